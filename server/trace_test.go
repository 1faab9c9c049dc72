package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/server"
)

// TestTraceServesExactBytes checks that a run's trace carries each event
// as the exact bytes the log hashed, so a trace can be checked against
// the log's leaves.
func TestTraceServesExactBytes(t *testing.T) {
	d := prepareDev(t)
	r := start(t, d.cfg, server.Options{}, d.finish(t))
	ctx := context.Background()
	run, err := client.New(r.url, "").StartRun(ctx, d.sign(t, time.Now(), func(tr *writ.Trigger) {
		tr.Task = "<escape> & \"quote\" — ünïcode"
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	human := client.New(r.url, d.env.Token)
	if _, err := human.Transition(ctx, string(run.ID), "end", "done <now>"); err != nil {
		t.Fatal(err)
	}
	if _, err := human.AuditCheckpoint(ctx, 7); err != nil { // 6 events and policy.loaded
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, r.url+"/v1/trace/"+string(run.ID), nil)
	req.Header.Set("Authorization", "Bearer "+d.env.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		Events []struct {
			Seq   int64           `json:"seq"`
			Event json.RawMessage `json:"event"`
		} `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatal(err)
	}
	if len(tr.Events) < 4 {
		t.Fatalf("trace has %d events; want trigger.accepted, run.started, token.issued, run.ended", len(tr.Events))
	}
	for _, te := range tr.Events {
		es, err := human.AuditEntries(ctx, te.Seq, te.Seq+1)
		if err != nil || len(es) != 1 {
			t.Fatalf("entry %d: %v", te.Seq, err)
		}
		if !bytes.Equal(es[0].Body, te.Event) {
			t.Errorf("trace event %d is not the logged bytes:\n trace %s\n log   %s", te.Seq, te.Event, es[0].Body)
		}
	}
}
