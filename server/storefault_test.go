package server_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/server"
)

// readyz returns /readyz's status and Retry-After.
func readyz(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// faultRig is a dev server whose store is made to fail, with a run that
// decides and the decisions the API acknowledged.
type faultRig struct {
	*policyRig
	self  *client.Client
	acked []string
}

func (f *faultRig) decideOnce(t *testing.T) error {
	t.Helper()
	d, err := f.self.WithRetry(-1).Decide(context.Background(), &client.DecideRequest{Action: writ.Action{Kind: "tool", Name: "read"}})
	if err == nil {
		if d.Decision != writ.VerdictAllow {
			t.Fatalf("decision %+v; want allow", d)
		}
		f.acked = append(f.acked, d.ID)
	}
	return err
}

// outage checks the server while its store cannot write: decisions are
// answered 503 store_unavailable with Retry-After (never a deny, never
// 500), and /readyz fails.
func (f *faultRig) outage(t *testing.T) {
	t.Helper()
	var last error
	for range 2000 {
		if last = f.decideOnce(t); last != nil {
			break
		}
	}
	var we *writ.Error
	if !errors.As(last, &we) || we.Kind != writ.KindUnavailable || we.Code != "store_unavailable" || we.RetryAfter < time.Second {
		t.Fatalf("decision while the store cannot write: %v; want 503 store_unavailable with Retry-After", last)
	}
	poll(t, "/readyz to fail", func() bool {
		s, ra := readyz(t, f.r.url)
		return s == http.StatusServiceUnavailable && ra != ""
	})
}

// recovered checks the server once the fault is gone, without a restart:
// ready again, deciding, and every acknowledged decision on record.
func (f *faultRig) recovered(t *testing.T) {
	t.Helper()
	poll(t, "/readyz to pass again", func() bool {
		s, _ := readyz(t, f.r.url)
		return s == http.StatusOK
	})
	d, err := f.self.Decide(context.Background(), &client.DecideRequest{Action: writ.Action{Kind: "tool", Name: "read"}})
	if err != nil || d.Decision != writ.VerdictAllow {
		t.Fatalf("decision after recovery: %+v %v", d, err)
	}
	f.acked = append(f.acked, d.ID)
	logged := map[string]bool{}
	denied := 0
	for _, e := range storeEvents(t, f.r.srv.Store()) {
		if e.Type == writ.EventDecision {
			logged[e.Subject] = true
			if e.Decision == writ.VerdictDeny {
				denied++
			}
		}
	}
	for _, id := range f.acked {
		if !logged[id] {
			t.Errorf("acknowledged decision %s is not on record", id)
		}
	}
	if denied != 0 {
		t.Errorf("%d decisions denied; the outage must deny none", denied)
	}
}

// TestStoreDiskFull: the data directory on a small tmpfs, filled up. The
// API answers 503 store_unavailable with Retry-After, /readyz fails, and
// once space is freed writ serves again without a restart, having lost
// nothing it acknowledged.
func TestStoreDiskFull(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("WRIT_TEST_REQUIRE_ALL") == "1" {
			t.Fatalf("mount a tmpfs (this test needs root) and WRIT_TEST_REQUIRE_ALL=1: %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs for the data directory (this test needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	})
	d := prepareDevIn(t, dir)
	r := start(t, d.cfg, server.Options{}, d.finish(t))
	p := &policyRig{t: t, d: d, r: r, human: client.New(r.url, d.env.Token)}
	self, _ := p.run(nil)
	f := &faultRig{policyRig: p, self: self}
	if err := f.decideOnce(t); err != nil {
		t.Fatal(err)
	}
	if s, _ := readyz(t, r.url); s != http.StatusOK {
		t.Fatalf("/readyz before the disk is full: %d", s)
	}

	filler := filepath.Join(dir, "filler")
	fh, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1 << 20, 4 << 10, 512} {
		buf := make([]byte, size)
		for {
			if _, err := fh.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	fh.Close()

	f.outage(t)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	f.recovered(t)
}

// TestStorePostgresDown: PostgreSQL (a cluster of the test's own) stopped
// under a running writ. The API answers 503 store_unavailable with
// Retry-After, /readyz fails, and once the database is back writ serves
// again without a restart, having lost nothing it acknowledged.
func TestStorePostgresDown(t *testing.T) {
	pg := ownPostgres(t)
	d := prepareDev(t)
	d.cfg.Store = pg.dsn("postgres")
	r := start(t, d.cfg, server.Options{}, d.finish(t))
	p := &policyRig{t: t, d: d, r: r, human: client.New(r.url, d.env.Token)}
	self, _ := p.run(nil)
	f := &faultRig{policyRig: p, self: self}
	if err := f.decideOnce(t); err != nil {
		t.Fatal(err)
	}
	pg.crash()
	f.outage(t)
	pg.start()
	f.recovered(t)
}
