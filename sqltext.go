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
// reset round trip when the session is released. It allocates nothing: it
// runs for every COMMIT.
func changesSession(sql string) bool {
	for rest := sql; rest != ""; {
		var stmt string
		stmt, rest, _ = strings.Cut(rest, ";")
		first, after := nextWord(stmt)
		switch {
		case strings.EqualFold(first, "set"):
			second, _ := nextWord(after)
			if !strings.EqualFold(second, "local") && !strings.EqualFold(second, "transaction") {
				return true
			}
		case strings.EqualFold(first, "reset"), strings.EqualFold(first, "listen"),
			strings.EqualFold(first, "prepare"), strings.EqualFold(first, "declare"):
			return true
		case strings.EqualFold(first, "create"):
			second, after := nextWord(after)
			if strings.EqualFold(second, "local") {
				second, _ = nextWord(after)
			}
			if strings.EqualFold(second, "temp") || strings.EqualFold(second, "temporary") {
				return true
			}
		}
		if containsFold(stmt, "set_config") || containsFold(stmt, "advisory_lock") && !containsFold(stmt, "advisory_xact_lock") {
			return true
		}
	}
	return false
}

// nextWord returns the first word of s, after blanks and line comments,
// and what follows it.
func nextWord(s string) (word, rest string) {
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		if !strings.HasPrefix(s, "--") {
			break
		}
		_, s, _ = strings.Cut(s, "\n")
	}
	end := strings.IndexAny(s, " \t\r\n(")
	if end < 0 {
		return s, ""
	}
	return s[:end], s[end:]
}

// containsFold reports whether s contains sub, an ASCII lower-case word,
// in any case.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// multiplexable reports whether sql may share a connection with other
// callers' statements, each in an implicit transaction of its own (see
// mux.go): one statement that reads or writes rows (SELECT, INSERT,
// UPDATE, DELETE, MERGE, WITH, VALUES, TABLE) and leaves nothing behind on
// the connection. Anything else runs on a connection of its own: session
// state, transaction control (a BEGIN would hold the neighbours'
// statements in its transaction), COPY, DISCARD or DEALLOCATE (which would
// drop the connection's statements), CALL (a procedure may commit), and
// what reads the connection's identity or its last sequence value
// (lastval, currval, pg_backend_pid), which another caller's statement
// may have set, or releases a session's advisory lock, which the caller
// took on a connection of its own. Like changesSession it reads the text and errs towards no.
func multiplexable(sql string) bool {
	if !singleStatement(sql) || changesSession(sql) {
		return false
	}
	first, _ := nextWord(sql)
	rowWord := false
	for _, w := range [...]string{"select", "insert", "update", "delete", "merge", "with", "values", "table"} {
		rowWord = rowWord || strings.EqualFold(first, w)
	}
	if !rowWord {
		return false
	}
	for _, f := range [...]string{"lastval", "currval", "pg_backend_pid", "advisory_unlock", "into temp", "into temporary", "into unlogged"} {
		if containsFold(sql, f) {
			return false
		}
	}
	return true
}
