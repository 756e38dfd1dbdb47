package pgpurepy

import "strings"

// singleStatement reports whether sql holds at most one statement: no
// semicolon outside quotes, quoted identifiers, dollar quotes and comments,
// except trailing ones. Such text goes through the extended protocol, with
// its cached description and binary results, even without arguments; text
// with several statements needs the simple protocol. When the text cannot be
// read with certainty (an unterminated quote), the answer is false, which
// is always safe.
func singleStatement(sql string) bool {
	for i := 0; i < len(sql); i++ {
		switch c := sql[i]; c {
		case '\'':
			backslashes := i > 0 && (sql[i-1] == 'E' || sql[i-1] == 'e')
			end := closeQuote(sql, i+1, '\'', backslashes)
			if end < 0 {
				return false
			}
			i = end
		case '"':
			end := closeQuote(sql, i+1, '"', false)
			if end < 0 {
				return false
			}
			i = end
		case '-':
			if i+1 < len(sql) && sql[i+1] == '-' {
				nl := strings.IndexByte(sql[i:], '\n')
				if nl < 0 {
					return true
				}
				i += nl
			}
		case '/':
			if i+1 < len(sql) && sql[i+1] == '*' {
				end := closeComment(sql, i+2)
				if end < 0 {
					return false
				}
				i = end
			}
		case '$':
			tag, ok := dollarTag(sql[i:])
			if !ok {
				continue
			}
			end := strings.Index(sql[i+len(tag):], tag)
			if end < 0 {
				return false
			}
			i += len(tag) + end + len(tag) - 1
		case ';':
			return strings.Trim(sql[i:], "; \t\r\n") == ""
		}
	}
	return true
}

// closeQuote returns the index of the quote that closes a literal starting
// at from, or -1. A doubled quote is part of the literal.
func closeQuote(sql string, from int, q byte, backslashes bool) int {
	for i := from; i < len(sql); i++ {
		switch sql[i] {
		case '\\':
			if backslashes {
				i++
			}
		case q:
			if i+1 < len(sql) && sql[i+1] == q {
				i++
				continue
			}
			return i
		}
	}
	return -1
}

// closeComment returns the index of the '/' that ends a block comment
// opened before from, or -1; block comments nest in PostgreSQL.
func closeComment(sql string, from int) int {
	depth := 1
	for i := from; i+1 < len(sql); i++ {
		switch {
		case sql[i] == '/' && sql[i+1] == '*':
			depth++
			i++
		case sql[i] == '*' && sql[i+1] == '/':
			depth--
			i++
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// dollarTag returns the $tag$ that opens a dollar-quoted string at the start
// of s. A parameter such as $1 is not one.
func dollarTag(s string) (string, bool) {
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '$':
			return s[:i+1], true
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80:
		case c >= '0' && c <= '9' && i > 1:
		default:
			return "", false
		}
	}
	return "", false
}

// changesSession reports whether sql may leave session state behind on the
// connection, for the next holder to find: a setting (SET without LOCAL,
// set_config), a LISTEN, a temporary object, a prepared statement or cursor
// of its own, a session-level advisory lock. It reads the text, so it can
// be fooled (a function that runs SET); it errs towards yes, which costs a
// reset round trip when the session is released.
func changesSession(sql string) bool {
	for _, stmt := range strings.Split(strings.ToLower(sql), ";") {
		words := strings.Fields(stmt)
		for len(words) > 0 && strings.HasPrefix(words[0], "--") {
			words = words[1:]
		}
		if len(words) == 0 {
			continue
		}
		switch words[0] {
		case "set":
			if len(words) < 2 || words[1] != "local" && words[1] != "transaction" {
				return true
			}
		case "reset", "listen", "prepare", "declare":
			return true
		case "create":
			if len(words) > 1 && (words[1] == "temp" || words[1] == "temporary" || words[1] == "local" && len(words) > 2 && strings.HasPrefix(words[2], "temp")) {
				return true
			}
		}
		if strings.Contains(stmt, "set_config") || strings.Contains(stmt, "advisory_lock") && !strings.Contains(stmt, "advisory_xact_lock") {
			return true
		}
	}
	return false
}
