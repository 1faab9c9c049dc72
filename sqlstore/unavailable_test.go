package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/writ-dev/writ"
)

// TestUnavailable: outages of the database are 503 store_unavailable
// with Retry-After, the cause kept; other errors are left as they are.
func TestUnavailable(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"postgres disk full", &pgconn.PgError{Code: "53100"}, true},
		{"postgres read only", fmt.Errorf("insert: %w", &pgconn.PgError{Code: "25006"}), true},
		{"postgres admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"postgres connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"connection refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{"no space", fmt.Errorf("write: %w", syscall.ENOSPC), true},
		{"postgres unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"a bug", errors.New("nil map"), false},
		{"already a writ error", writ.Errorf(writ.KindConflict, "replay", "seen"), false},
	} {
		got := Unavailable(c.err)
		if isOut := writ.ErrorCode(got) == "store_unavailable"; isOut != c.want {
			t.Errorf("%s: Unavailable = %v; outage %v, want %v", c.name, got, isOut, c.want)
			continue
		}
		if !c.want {
			if got != c.err {
				t.Errorf("%s: changed to %v", c.name, got)
			}
			continue
		}
		var we *writ.Error
		if !errors.As(got, &we) || we.Kind != writ.KindUnavailable || we.RetryAfter <= 0 || !errors.Is(got, c.err) {
			t.Errorf("%s: %#v; want KindUnavailable with Retry-After, wrapping the cause", c.name, got)
		}
	}
	if Unavailable(nil) != nil {
		t.Error("Unavailable(nil) != nil")
	}
}

// TestWritable: the probe commits a real write (its row changes), its
// answer is reused for a while, and a closed store is not writable.
func TestWritable(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(t *testing.T) *DB) {
		db := open(t)
		ctx := context.Background()
		if err := db.Writable(ctx); err != nil {
			t.Fatalf("Writable: %v", err)
		}
		var n int64
		if err := db.rdb.QueryRowContext(ctx, "SELECT n FROM write_probe WHERE id = 1").Scan(&n); err != nil || n != 1 {
			t.Fatalf("probe row n = %d (%v); want 1 after one probe", n, err)
		}
		if err := db.Writable(ctx); err != nil {
			t.Fatalf("Writable again: %v", err)
		}
		if err := db.rdb.QueryRowContext(ctx, "SELECT n FROM write_probe WHERE id = 1").Scan(&n); err != nil || n != 1 {
			t.Errorf("probe row n = %d (%v); want the answer reused within %v", n, err, probeEvery)
		}
		db.Close()
		db.probeAt = db.probeAt.Add(-probeEvery)
		if err := db.Writable(ctx); writ.ErrorKind(err) != writ.KindUnavailable {
			t.Errorf("Writable after Close: %v; want unavailable", err)
		}
	})
}
