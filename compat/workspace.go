package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// pgpurepyModule is the module whose working tree the pgpurepy runs test.
const pgpurepyModule = "github.com/pgpurepy/pgpurepy"

// download fetches module@version through the module proxy (GOPROXY, into
// the read-only module cache) and returns its source directory.
func download(ctx context.Context, g *goTool, module, version string) (string, error) {
	out, err := g.output(ctx, "", "mod", "download", "-json", module+"@"+version)
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil && err == nil {
		err = jerr
	}
	if info.Error != "" {
		return "", fmt.Errorf("go mod download %s@%s: %s", module, version, info.Error)
	}
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w", module, version, err)
	}
	return info.Dir, nil
}

// copyTree copies the regular files of src into dst, writable (the module
// cache is read-only), leaving out version control directories.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir() && d.Name() == ".git":
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case !d.Type().IsRegular():
			return nil // module zips have no links; a checkout's are not needed
		}
		return copyFile(path, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// apply makes one patch in the copy rooted at root.
func (p patch) apply(root string) error {
	path := filepath.Join(root, filepath.FromSlash(p.file))
	if p.old == "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("patch: add %s: %w", p.file, err)
		}
		if _, err := f.WriteString(p.new); err != nil {
			f.Close()
			return fmt.Errorf("patch: add %s: %w", p.file, err)
		}
		return f.Close()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("patch: %w", err)
	}
	want := max(p.n, 1)
	if n := bytes.Count(b, []byte(p.old)); n != want {
		return fmt.Errorf("patch: %s: want %d occurrences of %q, found %d (has the upstream file changed?)", p.file, want, p.old, n)
	}
	return os.WriteFile(path, bytes.ReplaceAll(b, []byte(p.old), []byte(p.new)), 0o644)
}

// describe returns the patch as shown with -v.
func (p patch) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %s: %s\n", p.file, p.why)
	if p.n > 1 {
		fmt.Fprintf(&b, "    (%d occurrences)\n", p.n)
	}
	if p.old == "" {
		fmt.Fprintf(&b, "    + new file, %d lines\n", strings.Count(p.new, "\n"))
		return b.String()
	}
	for _, l := range strings.Split(p.old, "\n") {
		fmt.Fprintf(&b, "    - %s\n", l)
	}
	for _, l := range strings.Split(p.new, "\n") {
		fmt.Fprintf(&b, "    + %s\n", l)
	}
	return b.String()
}

// prepareCopy copies a suite's source to dst and patches it for drv: its
// patches, its extra requirements, and for pgpurepy a requirement of the
// working tree at repoRoot (with the working tree's go.sum lines, so that
// its dependencies need no new checksums where the versions agree).
func prepareCopy(ctx context.Context, g *goTool, s suite, drv driver, src, dst, repoRoot string) error {
	if err := copyTree(src, dst); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	for _, p := range s.patches[drv] {
		if err := p.apply(dst); err != nil {
			return err
		}
	}
	modDir := filepath.Join(dst, filepath.FromSlash(s.modDir))
	args := []string{"mod", "edit"}
	for _, r := range s.require[drv] {
		args = append(args, "-require="+r)
	}
	if drv == pure {
		args = append(args, "-require="+pgpurepyModule+"@v0.0.0", "-replace="+pgpurepyModule+"="+repoRoot)
		if err := appendGoSum(filepath.Join(repoRoot, "go.sum"), filepath.Join(modDir, "go.sum")); err != nil {
			return err
		}
	}
	if len(args) == 2 {
		return nil
	}
	if _, err := g.output(ctx, modDir, args...); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// appendGoSum adds to the go.sum file to the lines of from that it lacks.
func appendGoSum(from, to string) error {
	add, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	have, err := os.ReadFile(to)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	known := map[string]bool{}
	for _, l := range strings.Split(string(have), "\n") {
		known[l] = true
	}
	var b bytes.Buffer
	b.Write(have)
	for _, l := range strings.Split(string(add), "\n") {
		if l != "" && !known[l] {
			b.WriteString(l + "\n")
		}
	}
	return os.WriteFile(to, b.Bytes(), 0o644)
}

// goTool runs the go command with the environment every run shares.
type goTool struct {
	path string
	env  []string
}

// output runs go with args in dir and returns its standard output; the
// error carries its standard error.
func (g *goTool) output(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, g.path, args...)
	cmd.Dir = dir
	cmd.Env = g.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
