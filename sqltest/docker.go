package sqltest

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// dockerAvailable reports whether `docker info` answers.
func dockerAvailable(ctx context.Context) error {
	path, err := exec.LookPath("docker")
	if err != nil {
		return fmt.Errorf("no docker CLI on PATH")
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "info", "--format", "{{.ServerVersion}}")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker info: %w: %s", err, firstLine(string(out)))
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func docker(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.WaitDelay = 2 * time.Second
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("sqltest: docker %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// startDocker runs a postgres container with a port published on
// 127.0.0.1 and waits until it accepts connections.
func startDocker(ctx context.Context, opts Options) (_ *Server, err error) {
	image := opts.getenv(EnvDockerImage)
	if image == "" {
		image = "postgres:16"
	}
	args := []string{"run", "-d", "--rm",
		"-e", "POSTGRES_HOST_AUTH_METHOD=trust",
		"-p", "127.0.0.1::5432",
		"--label", "sqltest=1",
		image,
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
		"-c", "max_connections=300", "-c", "password_encryption=scram-sha-256",
	}
	for k, v := range opts.ServerConfig {
		args = append(args, "-c", k+"="+v)
	}
	opts.progressf("sqltest: no local PostgreSQL; starting Docker container %s ...", image)
	start := time.Now()
	id, err := docker(ctx, "", args...)
	if err != nil {
		return nil, err
	}
	s := &Server{kind: kindDocker, containerID: id, host: "127.0.0.1", running: true}
	defer func() {
		if err != nil {
			err = withLog(err, s.Log())
			s.Close()
		}
	}()
	if s.reaper, err = startReaper(nil, `docker rm -f -v "$1" >/dev/null 2>&1`, id); err != nil {
		return nil, err
	}
	hostPort, err := docker(ctx, "", "port", id, "5432/tcp")
	if err != nil {
		return nil, err
	}
	_, portStr, ok := strings.Cut(firstLine(hostPort), ":")
	if s.port, err = strconv.Atoi(portStr); !ok || err != nil {
		return nil, fmt.Errorf("sqltest: docker port: cannot parse %q", hostPort)
	}
	if err := s.waitReady(ctx, 2*time.Minute); err != nil {
		return nil, err
	}
	// Connections arrive from the Docker bridge, not from 127.0.0.1.
	hba := append(append([]string{}, opts.HBA...),
		"local all all trust",
		"host all "+passwordRole+" all scram-sha-256",
		"host all all all trust",
		"host replication all all trust")
	if _, err := docker(ctx, strings.Join(hba, "\n")+"\n", "exec", "-i", id,
		"sh", "-c", `cat > "$PGDATA/pg_hba.conf"`); err != nil {
		return nil, err
	}
	if err := s.Exec(ctx, "", "SELECT pg_reload_conf()"); err != nil {
		return nil, err
	}
	if err := s.setupRoles(ctx); err != nil {
		return nil, err
	}
	opts.progressf("sqltest: PostgreSQL container %.12s ready on %s:%d in %v", id, s.host, s.port,
		time.Since(start).Round(time.Millisecond))
	return s, nil
}

// waitReady polls until the server answers a query.
func (s *Server) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.Exec(qctx, "", "SELECT 1")
		qcancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sqltest: server not ready: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func dockerRemove(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := docker(ctx, "", "rm", "-f", "-v", id)
	return err
}

func dockerLogs(id string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "docker", "logs", id).CombinedOutput()
	return string(out)
}
