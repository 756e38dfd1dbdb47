package otelpgpurepy

import "strings"

// sanitize returns q with its literals replaced by ?, as the semantic
// conventions ask of db.query.text for a statement that may carry values
// in its text: strings ('…', E'…', B'…', X'…', N'…', U&'…', and dollar
// quoted $tag$…$tag$), numbers, TRUE and FALSE. Keywords, identifiers
// (quoted ones too), parameters ($1), operators and comments stay as they
// are. It reads PostgreSQL's lexical rules with standard_conforming_strings
// on, the default since PostgreSQL 9.1. It allocates only when q has a
// literal.
func sanitize(q string) string {
	var (
		b    strings.Builder
		last int // q[:last] is written to b, or needs no change
	)
	replace := func(from, to int) {
		if b.Len() == 0 {
			b.Grow(len(q))
		}
		b.WriteString(q[last:from])
		b.WriteByte('?')
		last = to
	}
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			i = lineEnd(q, i)
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			i = blockCommentEnd(q, i)
		case c == '\'':
			end := stringEnd(q, i, false)
			replace(i, end)
			i = end
		case c == '"':
			i = quotedEnd(q, i)
		case c == '$':
			if i+1 < len(q) && isDigit(q[i+1]) {
				i = digitsEnd(q, i+1) // a parameter
				continue
			}
			if end, ok := dollarQuoteEnd(q, i); ok {
				replace(i, end)
				i = end
				continue
			}
			i++
		case isIdentStart(c):
			end := identEnd(q, i)
			word := q[i:end]
			switch {
			case end < len(q) && q[end] == '\'' && len(word) == 1 && strings.ContainsAny(word, "eEbBxXnN"):
				lit := stringEnd(q, end, word == "e" || word == "E")
				replace(i, lit)
				end = lit
			case len(word) == 1 && (word == "u" || word == "U") && strings.HasPrefix(q[end:], "&'"):
				lit := stringEnd(q, end+1, false)
				replace(i, lit)
				end = lit
			case strings.EqualFold(word, "true") || strings.EqualFold(word, "false"):
				replace(i, end)
			}
			i = end
		case isDigit(c) || c == '.' && i+1 < len(q) && isDigit(q[i+1]):
			end := numberEnd(q, i)
			replace(i, end)
			i = end
		default:
			i++
		}
	}
	if b.Len() == 0 && last == 0 {
		return q
	}
	b.WriteString(q[last:])
	return b.String()
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isIdentStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentPart(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }

func identEnd(q string, i int) int {
	for i < len(q) && isIdentPart(q[i]) {
		i++
	}
	return i
}

func digitsEnd(q string, i int) int {
	for i < len(q) && isDigit(q[i]) {
		i++
	}
	return i
}

// numberEnd reads a numeric constant: digits, a fraction, an exponent with
// its sign, hexadecimal, octal and binary forms, and _ separators.
func numberEnd(q string, i int) int {
	for i < len(q) {
		c := q[i]
		switch {
		case isDigit(c) || c == '.' || c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
			i++
			if (c == 'e' || c == 'E') && i < len(q) && (q[i] == '+' || q[i] == '-') {
				i++
			}
		default:
			return i
		}
	}
	return i
}

func lineEnd(q string, i int) int {
	if n := strings.IndexByte(q[i:], '\n'); n >= 0 {
		return i + n + 1
	}
	return len(q)
}

// blockCommentEnd reads a /* */ comment, which nests in PostgreSQL.
func blockCommentEnd(q string, i int) int {
	depth := 0
	for i < len(q) {
		switch {
		case strings.HasPrefix(q[i:], "/*"):
			depth++
			i += 2
		case strings.HasPrefix(q[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(q)
}

// stringEnd reads the string constant whose opening quote is at i: a
// doubled quote stands for one, and with backslashes (an E'…' string) a
// backslash escapes the next byte.
func stringEnd(q string, i int, backslashes bool) int {
	for i++; i < len(q); i++ {
		switch q[i] {
		case '\\':
			if backslashes {
				i++
			}
		case '\'':
			if i+1 < len(q) && q[i+1] == '\'' {
				i++
				continue
			}
			return i + 1
		}
	}
	return len(q)
}

// quotedEnd reads the quoted identifier whose opening quote is at i.
func quotedEnd(q string, i int) int {
	for i++; i < len(q); i++ {
		if q[i] == '"' {
			if i+1 < len(q) && q[i+1] == '"' {
				i++
				continue
			}
			return i + 1
		}
	}
	return len(q)
}

// dollarQuoteEnd reads the dollar-quoted string whose opening $tag$ is at
// i; ok is false when there is no tag at i.
func dollarQuoteEnd(q string, i int) (end int, ok bool) {
	j := i + 1
	if j < len(q) && isIdentStart(q[j]) {
		j = identEnd(q, j)
		// identEnd takes $ as part of an identifier; the tag ends at the
		// first one.
		if k := strings.IndexByte(q[i+1:j], '$'); k >= 0 {
			j = i + 1 + k
		}
	}
	if j >= len(q) || q[j] != '$' {
		return 0, false
	}
	tag := q[i : j+1]
	if n := strings.Index(q[j+1:], tag); n >= 0 {
		return j + 1 + n + len(tag), true
	}
	return len(q), true
}
