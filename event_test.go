package writ_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/writ-dev/writ"
)

// sampleEvent builds the same event each time, filling its maps in the
// order given, with its time in zone loc.
func sampleEvent(loc *time.Location, reverse bool) *writ.Event {
	keys := []string{"b", "a", "html", "n", "c"}
	vals := map[string]any{
		"b":    1,
		"a":    map[string]any{"z": true, "y": []any{"x", 2.5}},
		"html": "<&>",
		"n":    nil,
		"c":    "é",
	}
	details := map[string]any{}
	if reverse {
		for i := len(keys) - 1; i >= 0; i-- {
			details[keys[i]] = vals[keys[i]]
		}
	} else {
		for _, k := range keys {
			details[k] = vals[k]
		}
	}
	return &writ.Event{
		ID:      "01jd8x6k3m4n5p6q7r8s9t0v1w",
		Time:    time.Date(2026, 11, 25, 20, 0, 0, 500_000_000, time.UTC).In(loc),
		Type:    writ.EventRunStarted,
		Run:     "01jd8x6k3m4n5p6q7r8s9t0v1x",
		Actor:   writ.SignerActor("alice"),
		Subject: "acme/api",
		Details: details,
	}
}

func TestEventMarshalGolden(t *testing.T) {
	got, err := sampleEvent(time.UTC, false).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// Fixed field order, omitted empty fields, sorted map keys, UTC time.
	want := `{"id":"01jd8x6k3m4n5p6q7r8s9t0v1w","time":"2026-11-25T20:00:00.5Z","type":"run.started",` +
		`"run":"01jd8x6k3m4n5p6q7r8s9t0v1x","actor":"signer:alice","subject":"acme/api",` +
		`"details":{"a":{"y":["x",2.5],"z":true},"b":1,"c":"é","html":"\u003c\u0026\u003e","n":null}}`
	if string(got) != want {
		t.Errorf("Marshal() =\n%s\nwant\n%s", got, want)
	}

	minimal, err := (&writ.Event{ID: "x", Type: writ.EventAlert}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"x","time":"0001-01-01T00:00:00Z","type":"alert"}`; string(minimal) != want {
		t.Errorf("Marshal(minimal) = %s; want %s", minimal, want)
	}
}

func TestEventMarshalDeterministic(t *testing.T) {
	first, err := sampleEvent(time.UTC, false).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	zones := []*time.Location{time.UTC, time.FixedZone("CET", 3600), time.FixedZone("PST", -8*3600), time.Local}
	for i := range 200 {
		e := sampleEvent(zones[i%len(zones)], i%2 == 1)
		got, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, first) {
			t.Fatalf("Marshal() differs for the same event (zone %v):\n%s\nfirst:\n%s", zones[i%len(zones)], got, first)
		}
		// Marshalling again gives the same bytes.
		if again, _ := e.Marshal(); !bytes.Equal(again, got) {
			t.Fatalf("Marshal() twice gave\n%s\n%s", got, again)
		}
	}
	// A time read from the clock (with a monotonic reading) marshals like
	// the same instant without one.
	now := time.Now()
	a, _ := (&writ.Event{ID: "x", Type: "t", Time: now}).Marshal()
	b, _ := (&writ.Event{ID: "x", Type: "t", Time: now.Round(0).In(time.FixedZone("Z", 7200))}).Marshal()
	if !bytes.Equal(a, b) {
		t.Errorf("Marshal() depends on the monotonic reading or zone:\n%s\n%s", a, b)
	}
}

func TestActors(t *testing.T) {
	tests := []struct{ got, want string }{
		{writ.HumanActor("alice"), "human:alice"},
		{writ.SignerActor("tickets"), "signer:tickets"},
		{(&writ.Principal{Kind: writ.PrincipalRun, Run: "01jd", Name: "spiffe://x"}).Actor(), "run:01jd"},
		{(&writ.Principal{Kind: writ.PrincipalHuman, Name: "bob"}).Actor(), "human:bob"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("actor = %q; want %q", tt.got, tt.want)
		}
	}
}
