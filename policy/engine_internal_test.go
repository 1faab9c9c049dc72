package policy

import (
	"context"
	"testing"
	"time"

	"github.com/writ-dev/writ"
)

// TestEngineOverload: evaluations wait for a CPU slot before their
// timeout starts; a caller that cannot get one is told the engine is
// overloaded, which is not a decision.
func TestEngineOverload(t *testing.T) {
	b, err := Load(context.Background(), Default(), LoadOptions{SkipTests: true})
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(b)
	e.MaxQueue = 10 * time.Millisecond
	for range cap(e.sem) {
		e.sem <- struct{}{}
	}
	if _, err := e.Evaluate(context.Background(), []byte(`{}`)); writ.ErrorCode(err) != "overloaded" || writ.ErrorKind(err) != writ.KindUnavailable {
		t.Fatalf("saturated engine: %v", err)
	}
	e.MaxQueue = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Evaluate(ctx, []byte(`{}`)); writ.ErrorCode(err) != "canceled" || writ.ErrorKind(err) != writ.KindUnavailable {
		t.Fatalf("cancelled while waiting: %v", err)
	}
	// The queue is bounded: beyond MaxWaiting waiting callers, the next is
	// shed at once, however long MaxQueue is.
	e.MaxWaiting = 1
	e.waiting.Add(1)
	if _, err := e.Evaluate(context.Background(), []byte(`{}`)); writ.ErrorCode(err) != "overloaded" {
		t.Fatalf("queue full: %v", err)
	}
	e.waiting.Add(-1)
	<-e.sem
	// With a free slot it evaluates (this input is undefined for the
	// default bundle's result: an evaluation error, not overload).
	if _, err := e.Evaluate(context.Background(), []byte(`{}`)); writ.ErrorKind(err) == writ.KindUnavailable {
		t.Fatalf("free slot: %v", err)
	}
}
