package writ_test

import (
	"testing"
	"time"

	"github.com/writ-dev/writ"
)

// TestRunStateTransitions checks CanTransition for every pair of states
// (and two invalid ones) against docs/design.md §4.3: active ⇄ suspended, then
// one of ended | killed | expired, which are final.
func TestRunStateTransitions(t *testing.T) {
	const (
		a = writ.RunActive
		s = writ.RunSuspended
		e = writ.RunEnded
		k = writ.RunKilled
		x = writ.RunExpired
	)
	allowed := map[[2]writ.RunState]bool{
		{a, s}: true, {a, e}: true, {a, k}: true, {a, x}: true,
		{s, a}: true, {s, e}: true, {s, k}: true, {s, x}: true, // the deadline runs on while suspended
	}
	states := append(append([]writ.RunState(nil), writ.RunStates...), "", "paused")
	for _, from := range states {
		for _, to := range states {
			want := allowed[[2]writ.RunState{from, to}]
			if got := from.CanTransition(to); got != want {
				t.Errorf("RunState(%q).CanTransition(%q) = %v; want %v", from, to, got, want)
			}
		}
	}
}

func TestRunStateFinal(t *testing.T) {
	tests := []struct {
		s            writ.RunState
		final, valid bool
		event        string
	}{
		{writ.RunActive, false, true, writ.EventRunResumed},
		{writ.RunSuspended, false, true, writ.EventRunSuspended},
		{writ.RunEnded, true, true, writ.EventRunEnded},
		{writ.RunKilled, true, true, writ.EventRunKilled},
		{writ.RunExpired, true, true, writ.EventRunExpired},
		{"", false, false, ""},
		{"ACTIVE", false, false, ""},
		{"paused", false, false, ""},
	}
	for _, tt := range tests {
		if got := tt.s.Final(); got != tt.final {
			t.Errorf("RunState(%q).Final() = %v; want %v", tt.s, got, tt.final)
		}
		if got := tt.s.Valid(); got != tt.valid {
			t.Errorf("RunState(%q).Valid() = %v; want %v", tt.s, got, tt.valid)
		}
		if got := tt.s.EventType(); got != tt.event {
			t.Errorf("RunState(%q).EventType() = %q; want %q", tt.s, got, tt.event)
		}
		if tt.final {
			// One-way: nothing leaves a final state, not even to itself.
			for _, to := range writ.RunStates {
				if tt.s.CanTransition(to) {
					t.Errorf("final state %q can move to %q", tt.s, to)
				}
			}
		}
	}
	if len(writ.RunStates) != 5 {
		t.Errorf("RunStates has %d states, want 5: %v", len(writ.RunStates), writ.RunStates)
	}
	for i, st := range writ.RunStates {
		// "live ones first"
		if live := i < 2; st.Final() == live {
			t.Errorf("RunStates[%d] = %q: want the two live states first", i, st)
		}
	}
}

func TestRunLiveAt(t *testing.T) {
	deadline := time.Date(2026, 11, 25, 21, 0, 0, 0, time.UTC)
	tests := []struct {
		state writ.RunState
		now   time.Time
		want  bool
	}{
		{writ.RunActive, deadline.Add(-time.Second), true},
		{writ.RunActive, deadline, false}, // refused at the deadline itself
		{writ.RunActive, deadline.Add(time.Nanosecond), false},
		{writ.RunSuspended, deadline.Add(-time.Hour), false},
		{writ.RunEnded, deadline.Add(-time.Hour), false},
		{writ.RunKilled, deadline.Add(-time.Hour), false},
		{writ.RunExpired, deadline.Add(-time.Hour), false},
	}
	for _, tt := range tests {
		r := &writ.Run{State: tt.state, Deadline: deadline}
		if got := r.LiveAt(tt.now); got != tt.want {
			t.Errorf("Run{State: %q, Deadline: %v}.LiveAt(%v) = %v; want %v", tt.state, deadline, tt.now, got, tt.want)
		}
	}
}

func TestRunSPIFFEID(t *testing.T) {
	r := &writ.Run{ID: "01jd8x6k3m4n5p6q7r8s9t0v1w", Agent: "refactor-bot"}
	want := "spiffe://writ.example.org/agent/refactor-bot/run/01jd8x6k3m4n5p6q7r8s9t0v1w"
	if got := r.SPIFFEID("writ.example.org"); got != want {
		t.Errorf("SPIFFEID() = %q; want %q", got, want)
	}
}
