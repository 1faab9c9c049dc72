package writtest_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

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
