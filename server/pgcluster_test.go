package server_test

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
)

// pgCluster is a PostgreSQL cluster of one test's own, for tests that stop
// or restart the database (doing that to the cluster the rest of the suite
// shares would break other packages' tests).
type pgCluster struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	as   []string // runuser -u postgres -- when running as root
}

// ownPostgres initdbs and starts a cluster in a temporary directory
// (a Unix socket only, fsync off), stopped and removed when the test
// ends. Without PostgreSQL's binaries the test is skipped, or fails under
// WRIT_TEST_REQUIRE_ALL=1.
func ownPostgres(t testing.TB) *pgCluster {
	t.Helper()
	bin := ""
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		bin = filepath.Dir(p)
	} else if dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin"); len(dirs) > 0 {
		sort.Strings(dirs)
		bin = dirs[len(dirs)-1]
	}
	if bin == "" {
		if os.Getenv("WRIT_TEST_REQUIRE_ALL") == "1" {
			t.Fatal("PostgreSQL's binaries (initdb, pg_ctl) are not installed and WRIT_TEST_REQUIRE_ALL=1")
		}
		t.Skip("PostgreSQL's binaries (initdb, pg_ctl) are not installed")
	}
	// A short path: a Unix socket's path must fit in 107 bytes.
	dir, err := os.MkdirTemp("/tmp", "writ-pg-")
	if err != nil {
		t.Fatal(err)
	}
	c := &pgCluster{t: t, bin: bin, dir: dir, port: 20000 + os.Getpid()%30000}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs a postgres user for PostgreSQL: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.as = []string{"runuser", "-u", "postgres", "--"}
	}
	t.Cleanup(func() {
		c.pgctl("-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	})
	if out, err := c.cmd(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	c.start()
	return c
}

func (c *pgCluster) cmd(name string, args ...string) *exec.Cmd {
	argv := append(append(append([]string{}, c.as...), name), args...)
	return exec.Command(argv[0], argv[1:]...)
}

func (c *pgCluster) pgctl(args ...string) ([]byte, error) {
	return c.cmd(filepath.Join(c.bin, "pg_ctl"), append([]string{"-D", filepath.Join(c.dir, "data")}, args...)...).CombinedOutput()
}

// start starts (or starts again) the cluster and waits until it accepts
// connections.
func (c *pgCluster) start() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses= -c fsync=off -c max_connections=200", c.port, c.dir)
	if out, err := c.pgctl("-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "120", "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		c.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

// crash stops the cluster the way a crash would (immediate: no
// checkpoint, every connection cut).
func (c *pgCluster) crash() {
	c.t.Helper()
	if out, err := c.pgctl("-m", "immediate", "-w", "stop"); err != nil {
		c.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// dsn is the DSN of database db on the cluster, as its superuser.
func (c *pgCluster) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d&sslmode=disable", db, c.dir, c.port)
}
