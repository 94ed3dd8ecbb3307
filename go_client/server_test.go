package headwater_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	headwater "github.com/headwater/headwater/go_client"
	headwaterv1 "github.com/headwater/headwater/go_client/gen/headwater/v1"
)

// The tests run against the real product: `headwater server start` from the project's
// virtualenv (make install creates it; HEADWATER_CLI points elsewhere), and flows served by
// its Python.
const startTimeout = 60 * time.Second

func projectBinary(variable, name string) string {
	if path := os.Getenv(variable); path != "" {
		return path
	}
	path, err := filepath.Abs(filepath.Join("..", ".venv", "bin", name))
	if err != nil {
		panic(err)
	}
	return path
}

// server is one `headwater server start` subprocess with its own home and SQLite database.
type server struct {
	address string
	home    string
	env     []string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has exited
}

func freePort() (int, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer listener.Close()
	return listener.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts a server in home with extra environment variables; stop it when done.
func startServer(home string, env ...string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{address: fmt.Sprintf("127.0.0.1:%d", port), home: home, env: env}
	return s, s.start()
}

func (s *server) start() error {
	cli := projectBinary("HEADWATER_CLI", "headwater")
	if _, err := os.Stat(cli); err != nil {
		return fmt.Errorf("%s is missing: run `make install` (or set HEADWATER_CLI): %w", cli, err)
	}
	if err := os.MkdirAll(s.home, 0o755); err != nil {
		return err
	}
	log, err := os.OpenFile(filepath.Join(s.home, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(s.address)
	s.cmd = exec.Command(cli, "server", "start", "--host", "127.0.0.1", "--port", port)
	s.cmd.Dir, s.cmd.Stdout, s.cmd.Stderr = s.home, log, log
	s.cmd.Env = append(withoutHeadwaterVariables(os.Environ()), append([]string{"HEADWATER_HOME=" + s.home, "PYTHONUNBUFFERED=1"}, s.env...)...)
	err = s.cmd.Start()
	log.Close() // the child has its own copy
	if err != nil {
		return err
	}
	s.exited = make(chan struct{})
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	return s.waitUntilServing()
}

func withoutHeadwaterVariables(env []string) []string {
	var kept []string
	for _, variable := range env {
		if !strings.HasPrefix(variable, "HEADWATER_") && !strings.HasPrefix(variable, "OTEL_") {
			kept = append(kept, variable)
		}
	}
	return kept
}

func (s *server) waitUntilServing() error {
	conn, err := grpc.NewClient(s.address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("the server exited during start (%v):\n%s", s.cmd.ProcessState, s.output())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		answer, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && answer.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	return fmt.Errorf("the server on %s was not SERVING after %s:\n%s", s.address, startTimeout, s.output())
}

// stop ends the server with SIGTERM, its clean shutdown, and waits for it (SIGKILL after 15 s).
func (s *server) stop() {
	stopProcess(s.cmd, s.exited)
}

// restart stops the server and starts it again on the same port and database.
func (s *server) restart() error {
	s.stop()
	return s.start()
}

func (s *server) output() string {
	data, _ := os.ReadFile(filepath.Join(s.home, "server.log"))
	return string(data)
}

func stopProcess(cmd *exec.Cmd, exited chan struct{}) {
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// servedFlows is a Python process serving the deployment "hello/daily" (flows.py below) from the
// given server, as `python flows.py` would for a user.
type servedFlows struct {
	cmd    *exec.Cmd
	exited chan struct{}
	dir    string
}

const flowsPy = `from headwater import flow


@flow(log_prints=True)
def hello(name: str = "world") -> str:
    print(f"hello {name}")
    return name


if __name__ == "__main__":
    hello.serve("daily")
`

func serveFlows(s *server, dir string) (*servedFlows, error) {
	return serveSource(s, dir, flowsPy, "hello/daily")
}

// serveSource runs `python flows.py` with source as flows.py and extra environment variables,
// and waits until it has registered deployment ("flow-name/deployment-name").
func serveSource(s *server, dir, source, deployment string, env ...string) (*servedFlows, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "flows.py"), []byte(source), 0o644); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(projectBinary("HEADWATER_PYTHON", "python"), "flows.py")
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, log, log
	cmd.Env = append(withoutHeadwaterVariables(os.Environ()), append([]string{"HEADWATER_API_URL=" + s.address, "HEADWATER_HOME=" + dir, "PYTHONUNBUFFERED=1"}, env...)...)
	err = cmd.Start()
	log.Close()
	if err != nil {
		return nil, err
	}
	served := &servedFlows{cmd: cmd, exited: make(chan struct{}), dir: dir}
	go func() {
		_ = cmd.Wait()
		close(served.exited)
	}()
	// The deployment exists once serve registered it; it is served from then on.
	client, err := headwater.Dial(s.address)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-served.exited:
			return nil, fmt.Errorf("python flows.py exited:\n%s", served.output())
		default:
		}
		_, err = client.Deployments.GetDeployment(context.Background(), &headwaterv1.GetDeploymentRequest{
			Deployment: &headwaterv1.GetDeploymentRequest_Name{Name: deployment},
		})
		if err == nil {
			return served, nil
		}
		if !errors.Is(headwater.FromError(err), headwater.ErrNotFound) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	served.stop()
	return nil, fmt.Errorf("%s was not deployed (%v):\n%s", deployment, err, served.output())
}

func (f *servedFlows) stop() {
	stopProcess(f.cmd, f.exited)
}

func (f *servedFlows) output() string {
	data, _ := os.ReadFile(filepath.Join(f.dir, "serve.log"))
	return string(data)
}

// shared is the server (with hello/daily served) most tests use; TestMain starts and stops it.
// sharedPostgres is its twin on PostgreSQL, for the tests that run on both databases.
var shared, sharedPostgres *server

// onEachDatabase runs test against the shared server on SQLite, then against the one on
// PostgreSQL.
func onEachDatabase(t *testing.T, test func(t *testing.T, s *server)) {
	for _, database := range []struct {
		name   string
		server *server
	}{{"sqlite", shared}, {"postgres", sharedPostgres}} {
		t.Run(database.name, func(t *testing.T) { test(t, database.server) })
	}
}

// throwawayPostgres creates an empty database on the test PostgreSQL server (the one
// scripts/ensure-postgres runs, which make test starts) and returns its URL for the server and
// a function that drops it. It goes through the project's Python and psycopg, as
// tests/server_harness.py does, so this module needs no PostgreSQL driver of its own.
func throwawayPostgres() (string, func(), error) {
	port := cmp.Or(os.Getenv("HEADWATER_TEST_POSTGRES_PORT"), "54320")
	admin := fmt.Sprintf("postgresql://postgres@127.0.0.1:%s/test", port)
	name := "hw_go_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	run := func(statement string) error {
		const script = "import sys, psycopg\n" +
			"with psycopg.connect(sys.argv[1], autocommit=True, connect_timeout=5) as c:\n" +
			"    c.execute(sys.argv[2])\n"
		output, err := exec.Command(projectBinary("HEADWATER_PYTHON", "python"), "-c", script, admin, statement).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s on %s failed (%v; run scripts/ensure-postgres):\n%s", statement, admin, err, output)
		}
		return nil
	}
	if err := run(`CREATE DATABASE "` + name + `"`); err != nil {
		return "", nil, err
	}
	url := fmt.Sprintf("postgresql+psycopg://postgres@127.0.0.1:%s/%s", port, name)
	return url, func() { _ = run(`DROP DATABASE IF EXISTS "` + name + `" WITH (FORCE)`) }, nil
}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	home, err := os.MkdirTemp("", "headwater-go-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(home)
	shared, err = startServer(filepath.Join(home, "server"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer shared.stop()
	served, err := serveFlows(shared, filepath.Join(home, "flows"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer served.stop()
	url, drop, err := throwawayPostgres()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer drop()
	sharedPostgres, err = startServer(filepath.Join(home, "postgres"), "HEADWATER_DATABASE_URL="+url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer sharedPostgres.stop()
	servedPostgres, err := serveFlows(sharedPostgres, filepath.Join(home, "flows-postgres"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer servedPostgres.stop()
	return m.Run()
}
