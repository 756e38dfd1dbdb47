package main

import (
	"fmt"
	"os"
	"strings"
)

// The two lists that excuse a pgpurepy result, kept next to the runner so
// that every entry, and its reason, is reviewed like code.
const (
	// notApplicableFile names the top-level tests that exercise the library's
	// own native API rather than database/sql; they are skipped (go test
	// -skip) in the pgpurepy run only.
	notApplicableFile = "not-applicable.txt"
	// knownDifferencesFile names tests that pgpurepy fails on purpose where
	// the baseline passes.
	knownDifferencesFile = "known-differences.txt"
)

// list is one of the two files: suite → test → reason.
type list map[string]map[string]string

// readList reads a list file: one entry a line, "suite test reason…";
// blank lines and lines starting with # are ignored.
func readList(path string) (list, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseList(path, string(b))
}

func parseList(name, text string) (list, error) {
	l := list{}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("%s:%d: want \"suite test reason\", got %q", name, i+1, line)
		}
		if l[f[0]] == nil {
			l[f[0]] = map[string]string{}
		}
		if _, dup := l[f[0]][f[1]]; dup {
			return nil, fmt.Errorf("%s:%d: %s %s is listed twice", name, i+1, f[0], f[1])
		}
		l[f[0]][f[1]] = strings.Join(f[2:], " ")
	}
	return l, nil
}

// match returns the entry for test in suite: the test itself or one of its
// parents (an entry for TestA covers TestA/sub).
func (l list) match(suite, test string) (name, reason string, ok bool) {
	entries := l[suite]
	for name := test; ; {
		if reason, ok := entries[name]; ok {
			return name, reason, true
		}
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			return "", "", false
		}
		name = name[:i]
	}
}
