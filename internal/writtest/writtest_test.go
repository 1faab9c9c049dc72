package writtest_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/writtest"
)

// TestSyncBufferConcurrent: concurrent writers lose no line and a reader
// may look in while they write (the race detector checks the locking).
func TestSyncBufferConcurrent(t *testing.T) {
	var b writtest.SyncBuffer
	var wg sync.WaitGroup
	const writers, lines = 8, 100
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(&b, "w%d-%d\n", w, i)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	out := b.String()
	if n := strings.Count(out, "\n"); n != writers*lines {
		t.Fatalf("%d lines; want %d", n, writers*lines)
	}
	for w := range writers {
		for i := range lines {
			if !strings.Contains(out, fmt.Sprintf("w%d-%d\n", w, i)) {
				t.Fatalf("line w%d-%d is missing", w, i)
			}
		}
	}
}

// TestClock: the clock stays where it is put, moves by what Add says
// (back too), and is safe to read while the test moves it.
func TestClock(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	c := writtest.NewClock(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Fatalf("Now = %v, want %v", got, t0)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				_ = c.Now()
			}
		})
	}
	for range 100 {
		c.Add(time.Second)
	}
	wg.Wait()
	if got := c.Now(); !got.Equal(t0.Add(100 * time.Second)) {
		t.Errorf("after 100 × Add(1s): %v", got)
	}
	c.Add(-time.Hour)
	if got := c.Now(); !got.Equal(t0.Add(100*time.Second - time.Hour)) {
		t.Errorf("after a step back: %v", got)
	}
	c.Set(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Errorf("after Set: %v", got)
	}
}
