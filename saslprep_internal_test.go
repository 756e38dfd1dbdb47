package pgpurepy

import (
	"testing"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
)

// saslPrepTests holds what PostgreSQL's pg_saslprep and its callers end up hashing for each password. raw marks the
// passwords for which the server falls back to the raw bytes, so want is the input itself.
var saslPrepTests = []struct {
	name string
	in   string
	want string
	raw  bool
}{
	{name: "empty", in: "", want: ""},
	{name: "ascii", in: "pencil", want: "pencil"},
	{name: "ascii with space", in: "correct horse", want: "correct horse"},
	// pg_saslprep returns ASCII before looking at any table, so C.2.1 does not apply.
	{name: "ascii control char", in: "pass\x07word", want: "pass\x07word"},
	{name: "ascii tab and DEL", in: "a\tb\x7f", want: "a\tb\x7f"},
	{name: "ascii NUL", in: "a\x00b", want: "a\x00b"},

	// RFC 4013 section 3.
	{name: "rfc4013 soft hyphen", in: "I\u00ADX", want: "IX"},
	{name: "rfc4013 no transformation", in: "user", want: "user"},
	{name: "rfc4013 case preserved", in: "USER", want: "USER"},
	{name: "rfc4013 feminine ordinal", in: "\u00AA", want: "a"},
	{name: "rfc4013 roman nine", in: "\u2168", want: "IX"},
	{name: "rfc4013 bell is ascii", in: "\u0007", want: "\u0007"},
	{name: "rfc4013 bidi failure", in: "\u0627\u0031", want: "\u0627\u0031", raw: true},

	// Table C.1.2 maps to U+0020.
	{name: "no-break space", in: "a\u00A0b", want: "a b"},
	{name: "ideographic space", in: "a\u3000b", want: "a b"},
	{name: "ogham space mark", in: "a\u1680b", want: "a b"},
	{name: "only no-break space", in: "\u00A0", want: " "},
	// U+200B is in C.1.2 and B.1; PostgreSQL applies C.1.2.
	{name: "zero width space", in: "a\u200Bb", want: "a b"},

	// Table B.1 maps to nothing.
	{name: "zero width joiner", in: "a\u200Db", want: "ab"},
	{name: "byte order mark", in: "\uFEFFpass", want: "pass"},
	{name: "variation selector", in: "\u00E9\uFE0F", want: "\u00E9"},
	{name: "combining grapheme joiner", in: "a\u034Fb\u00E9", want: "ab\u00E9"},
	// An empty result is SASLPREP_PROHIBITED, and the callers then use the raw password.
	{name: "maps to empty", in: "\u00AD", want: "\u00AD", raw: true},
	{name: "maps to empty twice", in: "\u200C\uFEFF", want: "\u200C\uFEFF", raw: true},

	// NFKC.
	{name: "fi ligature", in: "\uFB01", want: "fi"},
	{name: "fullwidth A", in: "\uFF21", want: "A"},
	{name: "fullwidth word", in: "\uFF50\uFF41\uFF53\uFF53", want: "pass"},
	{name: "composed e acute", in: "caf\u00E9", want: "caf\u00E9"},
	{name: "decomposed e acute", in: "cafe\u0301", want: "caf\u00E9"},
	{name: "hangul jamo compose", in: "\u1100\u1161", want: "\uAC00"},
	{name: "superscript two", in: "x\u00B2", want: "x2"},

	// Not UTF-8.
	{name: "invalid byte", in: "\xff", want: "\xff", raw: true},
	{name: "latin1 e acute", in: "caf\xe9", want: "caf\xe9", raw: true},
	{name: "truncated sequence", in: "a\xc3", want: "a\xc3", raw: true},
	{name: "encoded surrogate", in: "\xed\xa0\x80", want: "\xed\xa0\x80", raw: true},
	{name: "overlong slash", in: "\xc0\xaf\u00E9", want: "\xc0\xaf\u00E9", raw: true},

	// Prohibited output (table C), checked once the string holds a non-ASCII character.
	{name: "ascii control beside non-ascii", in: "p\u00E4ss\tword", want: "p\u00E4ss\tword", raw: true},
	{name: "C.2.2 control", in: "a\u0085", want: "a\u0085", raw: true},
	{name: "C.3 private use", in: "a\uE000", want: "a\uE000", raw: true},
	{name: "C.4 non-character", in: "a\uFDD0", want: "a\uFDD0", raw: true},
	{name: "C.6 replacement char", in: "a\uFFFD", want: "a\uFFFD", raw: true},
	{name: "C.7 ideographic description", in: "\u2FF0", want: "\u2FF0", raw: true},
	{name: "C.8 left-to-right mark", in: "a\u200E", want: "a\u200E", raw: true},
	{name: "C.9 tag", in: "a\U000E0041", want: "a\U000E0041", raw: true},

	// Table A.1: assigned after Unicode 3.2.
	{name: "unassigned in 3.2", in: "a\u0221", want: "a\u0221", raw: true},
	{name: "emoji", in: "pass\U0001F600", want: "pass\U0001F600", raw: true},

	// Bidirectional check (RFC 3454 section 6).
	{name: "arabic alone", in: "\u0627", want: "\u0627"},
	{name: "hebrew around digit", in: "\u05D01\u05D0", want: "\u05D01\u05D0"},
	{name: "hebrew ends with digit", in: "\u05D01", want: "\u05D01", raw: true},
	{name: "hebrew starts with digit", in: "1\u05D0", want: "1\u05D0", raw: true},
	{name: "hebrew and latin", in: "\u05D0a\u05D0", want: "\u05D0a\u05D0", raw: true},

	// PostgreSQL runs the prohibit and bidi checks on the mapped string before NFKC, where the RFC runs them after.
	{name: "tone mark checked before nfkc", in: "a\u0340", want: "a\u0340", raw: true},
	{name: "bidi checked before nfkc", in: "\u0627\uFE70", want: "\u0627 \u064B"},
}

func TestSASLPrep(t *testing.T) {
	for _, tt := range saslPrepTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := saslPrep(tt.in); got != tt.want {
				t.Errorf("saslPrep(%+q) = %+q, want %+q", tt.in, got, tt.want)
			}
			if tt.raw && tt.want != tt.in {
				t.Fatalf("bad test: raw case %+q must want its input", tt.in)
			}
		})
	}
}

// pgxNormalize models pgconn's normalizeScramPassword (pgx v5.13), which runs on every password after we hand it
// over: a password holding a code point of table A.1 is used as it is, otherwise PRECIS OpaqueString's result, or the
// password itself when OpaqueString rejects it.
func pgxNormalize(password string) string {
	for _, r := range password {
		if unassigned32.contains(r) {
			return password
		}
	}
	s, err := precis.OpaqueString.String(password)
	if err != nil {
		return password
	}
	return s
}

// TestSASLPrepSurvivesPgx checks that pgx's own normalization leaves a prepared password alone, so the bytes the
// server hashed are the bytes pgx hashes. Raw fallbacks are left out: OpaqueString maps non-ASCII spaces, applies
// NFC and has no bidi rule, so pgx may change a password the server took raw, whatever saslPrep returns.
func TestSASLPrepSurvivesPgx(t *testing.T) {
	for _, tt := range saslPrepTests {
		if tt.raw {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			got := saslPrep(tt.in)
			if n := pgxNormalize(got); n != got {
				t.Errorf("pgx normalizes saslPrep(%+q) = %+q to %+q", tt.in, got, n)
			}
		})
	}
}

func TestSASLPrepTables(t *testing.T) {
	tables := map[string]runeRanges{
		"nonASCIISpace":    nonASCIISpace,
		"mappedToNothing":  mappedToNothing,
		"prohibitedOutput": prohibitedOutput,
		"unassigned32":     unassigned32,
		"randALCat":        randALCat,
		"lCat":             lCat,
	}
	for name, tab := range tables {
		for i, rg := range tab {
			if rg[0] > rg[1] {
				t.Errorf("%s[%d] = %U..%U is backwards", name, i, rg[0], rg[1])
			}
			// contains relies on sorted, disjoint ranges; adjacent ones should have been merged.
			if i > 0 && tab[i-1][1]+1 >= rg[0] {
				t.Errorf("%s[%d] = %U..%U overlaps or touches %U..%U", name, i, rg[0], rg[1], tab[i-1][0], tab[i-1][1])
			}
		}
	}

	// Spot checks against RFC 3454's appendix, at range edges where an off-by-one would hide.
	members := []struct {
		table string
		r     rune
		want  bool
	}{
		{"nonASCIISpace", 0x0020, false},
		{"nonASCIISpace", 0x00A0, true},
		{"nonASCIISpace", 0x200B, true},
		{"nonASCIISpace", 0x200C, false},
		{"mappedToNothing", 0x180A, false},
		{"mappedToNothing", 0x180B, true},
		{"mappedToNothing", 0xFE0F, true},
		{"mappedToNothing", 0xFE10, false},
		{"prohibitedOutput", 0x001F, true},
		{"prohibitedOutput", 0x0020, false},
		{"prohibitedOutput", 0x007E, false},
		{"prohibitedOutput", 0x007F, true},
		{"prohibitedOutput", 0x00A0, true},
		{"prohibitedOutput", 0x00A1, false},
		{"prohibitedOutput", 0xFFFD, true},
		{"prohibitedOutput", 0x1FFFD, false},
		{"prohibitedOutput", 0x1FFFE, true},
		{"prohibitedOutput", 0xE0000, false},
		{"prohibitedOutput", 0x10FFFF, true},
		{"unassigned32", 0x0220, false},
		{"unassigned32", 0x0221, true},
		{"unassigned32", 0x20AC, false},
		{"unassigned32", 0x1D7CD, true},
		{"unassigned32", 0xEFFFD, true},
		{"unassigned32", 0xEFFFE, false},
		{"randALCat", 0x05BE, true},
		{"randALCat", 0x05BF, false},
		{"randALCat", 0x200F, true},
		{"randALCat", 0xFEFC, true},
		{"randALCat", 0xFEFD, false},
		{"lCat", 0x0040, false},
		{"lCat", 0x0041, true},
		{"lCat", 0x0031, false},
		{"lCat", 0x200E, true},
		{"lCat", 0x10FFFD, true},
		{"lCat", 0x10FFFE, false},
	}
	for _, m := range members {
		if got := tables[m.table].contains(m.r); got != m.want {
			t.Errorf("%s.contains(%U) = %v, want %v", m.table, m.r, got, m.want)
		}
	}
}

func FuzzSASLPrep(f *testing.F) {
	for _, tt := range saslPrepTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := saslPrep(in)
		if isASCII(in) || !utf8.ValidString(in) {
			if out != in {
				t.Fatalf("saslPrep(%+q) = %+q, want the input back", in, out)
			}
			return
		}
		if out == in {
			return
		}
		if !utf8.ValidString(out) {
			t.Fatalf("saslPrep(%+q) = %+q, not UTF-8", in, out)
		}
		if again := saslPrep(out); again != out {
			t.Fatalf("saslPrep(%+q) = %+q, but saslPrep of that = %+q", in, out, again)
		}
		if n := pgxNormalize(out); n != out {
			t.Fatalf("pgx normalizes saslPrep(%+q) = %+q to %+q", in, out, n)
		}
	})
}
