package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/writ-dev/writ"
	wapi "github.com/writ-dev/writ/api"
	"github.com/writ-dev/writ/auditlog"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/httpapi"
	"github.com/writ-dev/writ/server"
)

// auditAPI reads the audit routes of a running server with a human token.
type auditAPI struct {
	t          *testing.T
	base, auth string
	v          note.Verifier
	origin     string
}

func newAuditAPI(t *testing.T, base, token string) *auditAPI {
	a := &auditAPI{t: t, base: base, auth: "Bearer " + token}
	var key struct{ Key, Origin string }
	a.getJSON("/v1/audit/key", &key)
	v, err := note.NewVerifier(key.Key)
	if err != nil {
		t.Fatalf("the served log key %q: %v", key.Key, err)
	}
	if key.Origin != v.Name() || key.Origin != "writ.dev.local/audit" {
		t.Fatalf("origin %q, key name %q", key.Origin, v.Name())
	}
	a.v, a.origin = v, key.Origin
	return a
}

func (a *auditAPI) get(path string) []byte {
	a.t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.base+path, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", a.auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		a.t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	return b
}

func (a *auditAPI) getJSON(path string, v any) {
	a.t.Helper()
	if err := json.Unmarshal(a.get(path), v); err != nil {
		a.t.Fatalf("GET %s: %v", path, err)
	}
}

// open opens a signed checkpoint note with the served key.
func (a *auditAPI) open(msg []byte) auditlog.Checkpoint {
	a.t.Helper()
	cp, err := auditlog.OpenCheckpoint(msg, a.v, a.origin)
	if err != nil {
		a.t.Fatalf("open checkpoint %q: %v", msg, err)
	}
	return cp
}

// checkpoint waits for the log to hold at least n entries and returns its
// latest signed checkpoint, opened.
func (a *auditAPI) checkpoint(n int64) auditlog.Checkpoint {
	a.t.Helper()
	path := "/v1/audit/checkpoint"
	if n > 0 {
		path += "?wait=" + strconv.FormatInt(n, 10)
	}
	return a.open(a.get(path))
}

func decodeHashes(t *testing.T, in []string) [][]byte {
	t.Helper()
	out := make([][]byte, len(in))
	for i, s := range in {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != 32 {
			t.Fatalf("proof hash %d %q: not a base64 SHA-256 hash", i, s)
		}
		out[i] = b
	}
	return out
}

// refRoot computes the RFC 6962 root of bodies with transparency-dev/merkle
// (compact ranges): an implementation independent of tlog.
func refRoot(t *testing.T, bodies [][]byte) []byte {
	t.Helper()
	h := rfc6962.DefaultHasher
	if len(bodies) == 0 {
		return h.EmptyRoot()
	}
	rf := compact.RangeFactory{Hash: h.HashChildren}
	r := rf.NewEmptyRange(0)
	for _, b := range bodies {
		if err := r.Append(h.HashLeaf(b), nil); err != nil {
			t.Fatal(err)
		}
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestAuditProofsVerifyIndependently fetches inclusion and consistency
// proofs from a running server and checks them with transparency-dev/merkle
// (not the tlog package writ builds its tree with), against checkpoints
// opened with the key the server publishes: another RFC 6962
// implementation agrees with writ's.
func TestAuditProofsVerifyIndependently(t *testing.T) {
	d := prepareDev(t)
	r := start(t, d.cfg, server.Options{}, d.finish(t))
	ctx := context.Background()
	anon, admin := client.New(r.url, ""), client.New(r.url, d.env.Token)
	api := newAuditAPI(t, r.url, d.env.Token)
	hasher := rfc6962.DefaultHasher

	// A run starts; its events are provable at once with wait=1.
	run1, err := anon.StartRun(ctx, d.sign(t, time.Now(), nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := admin.Trace(ctx, string(run1.ID))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Events) != 3 {
		t.Fatalf("run 1 has %d events, want 3", len(tr.Events))
	}
	var first auditlog.Checkpoint
	for i, te := range tr.Events {
		var ir wapi.InclusionResponse
		api.getJSON("/v1/audit/proof/inclusion?wait=1&event="+url.QueryEscape(te.ID), &ir)
		var traced bytes.Buffer // the trace re-indents the event
		if err := json.Compact(&traced, te.Event); err != nil {
			t.Fatal(err)
		}
		if ir.Entry.ID != te.ID || !bytes.Equal(ir.Entry.Body, traced.Bytes()) {
			t.Fatalf("event %s: the proof is for entry %s %q", te.ID, ir.Entry.ID, ir.Entry.Body)
		}
		if ir.Checkpoint == "" {
			t.Fatalf("event %s: the proof comes without its checkpoint", te.ID)
		}
		cp := api.open([]byte(ir.Checkpoint))
		if cp.Size != ir.Size || ir.Index >= cp.Size {
			t.Fatalf("event %s: index %d, size %d, checkpoint size %d", te.ID, ir.Index, ir.Size, cp.Size)
		}
		leaf := hasher.HashLeaf(ir.Entry.Body)
		p := decodeHashes(t, ir.Proof)
		if err := proof.VerifyInclusion(hasher, uint64(ir.Index), uint64(cp.Size), leaf, p, cp.Root[:]); err != nil {
			t.Fatalf("event %s (entry %d): transparency-dev/merkle rejects writ's inclusion proof in tree %d: %v", te.ID, ir.Index, cp.Size, err)
		}
		// The check is not vacuous: another leaf, another index or a
		// changed proof hash fail.
		other := hasher.HashLeaf(append(append([]byte(nil), ir.Entry.Body...), ' '))
		if proof.VerifyInclusion(hasher, uint64(ir.Index), uint64(cp.Size), other, p, cp.Root[:]) == nil {
			t.Fatalf("entry %d: the proof verifies for other bytes too", ir.Index)
		}
		if cp.Size > 1 && proof.VerifyInclusion(hasher, uint64((ir.Index+1)%cp.Size), uint64(cp.Size), leaf, p, cp.Root[:]) == nil {
			t.Fatalf("entry %d: the proof verifies at another index too", ir.Index)
		}
		if len(p) > 0 {
			bad := append([][]byte(nil), p...)
			bad[0] = hasher.HashLeaf([]byte("not a tree node"))
			if proof.VerifyInclusion(hasher, uint64(ir.Index), uint64(cp.Size), leaf, bad, cp.Root[:]) == nil {
				t.Fatalf("entry %d: a changed proof verifies", ir.Index)
			}
		}
		if i == 0 {
			first = cp
		}
	}

	// More events: a second run, the first ended, a human token.
	run2, err := anon.StartRun(ctx, d.sign(t, time.Now(), nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Transition(ctx, string(run1.ID), "end", "done"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateToken(ctx, "", time.Hour); err != nil {
		t.Fatal(err)
	}
	tr2, err := admin.Trace(ctx, string(run2.ID))
	if err != nil {
		t.Fatal(err)
	}
	var ir2 wapi.InclusionResponse
	api.getJSON("/v1/audit/proof/inclusion?wait=1&event="+url.QueryEscape(tr2.Events[0].ID), &ir2)
	latest := api.checkpoint(ir2.Index + 5) // run 2's three, the end, the token: up to index+4
	if latest.Size <= first.Size {
		t.Fatalf("the log did not grow: %d then %d", first.Size, latest.Size)
	}

	// The whole log: the independent root of the served bytes is the
	// signed root, and every entry is provable in it, by index and by leaf.
	var entries struct{ Entries []wapi.AuditEntry }
	api.getJSON(fmt.Sprintf("/v1/audit/entries?start=0&end=%d", latest.Size), &entries)
	if int64(len(entries.Entries)) != latest.Size {
		t.Fatalf("%d entries served for a checkpoint of %d", len(entries.Entries), latest.Size)
	}
	bodies := make([][]byte, len(entries.Entries))
	for i, e := range entries.Entries {
		if e.Seq != int64(i) {
			t.Fatalf("entry %d has seq %d", i, e.Seq)
		}
		bodies[i] = e.Body
	}
	if got := refRoot(t, bodies); !bytes.Equal(got, latest.Root[:]) {
		t.Fatalf("transparency-dev/merkle computes root %x over the %d served entries; the checkpoint signs %x", got, latest.Size, latest.Root[:])
	}
	if got := refRoot(t, bodies[:first.Size]); !bytes.Equal(got, first.Root[:]) {
		t.Fatalf("the first %d entries have root %x, their checkpoint signs %x", first.Size, got, first.Root[:])
	}
	for i, b := range bodies {
		leaf := hasher.HashLeaf(b)
		for _, by := range []string{"index=" + strconv.Itoa(i), "leaf=" + fmt.Sprintf("%x", leaf)} {
			var ir wapi.InclusionResponse
			api.getJSON(fmt.Sprintf("/v1/audit/proof/inclusion?%s&size=%d", by, latest.Size), &ir)
			if ir.Index != int64(i) || ir.Size != latest.Size {
				t.Fatalf("%s: proof of entry %d in %d", by, ir.Index, ir.Size)
			}
			if err := proof.VerifyInclusion(hasher, uint64(i), uint64(latest.Size), leaf, decodeHashes(t, ir.Proof), latest.Root[:]); err != nil {
				t.Fatalf("%s: transparency-dev/merkle rejects the inclusion proof: %v", by, err)
			}
		}
	}
	// An inclusion proof in an older tree, against that tree's root.
	var old wapi.InclusionResponse
	api.getJSON(fmt.Sprintf("/v1/audit/proof/inclusion?index=0&size=%d", first.Size), &old)
	if err := proof.VerifyInclusion(hasher, 0, uint64(first.Size), hasher.HashLeaf(bodies[0]), decodeHashes(t, old.Proof), first.Root[:]); err != nil {
		t.Fatalf("inclusion of entry 0 in tree %d: %v", first.Size, err)
	}

	// Consistency: from the first checkpoint to the latest, and from every
	// stored checkpoint to the latest.
	consistent := func(from, to auditlog.Checkpoint) {
		t.Helper()
		var cr struct {
			From, To int64
			Proof    []string
		}
		api.getJSON(fmt.Sprintf("/v1/audit/proof/consistency?from=%d&to=%d", from.Size, to.Size), &cr)
		if cr.From != from.Size || cr.To != to.Size {
			t.Fatalf("asked for a proof from %d to %d, got %d to %d", from.Size, to.Size, cr.From, cr.To)
		}
		p := decodeHashes(t, cr.Proof)
		if err := proof.VerifyConsistency(hasher, uint64(from.Size), uint64(to.Size), p, from.Root[:], to.Root[:]); err != nil {
			t.Fatalf("transparency-dev/merkle rejects writ's consistency proof from %d to %d: %v", from.Size, to.Size, err)
		}
		if from.Size == to.Size || from.Size == 0 {
			return
		}
		forked := hasher.HashLeaf([]byte("a fork"))
		if proof.VerifyConsistency(hasher, uint64(from.Size), uint64(to.Size), p, forked, to.Root[:]) == nil {
			t.Fatalf("the consistency proof from %d to %d verifies for another old root too", from.Size, to.Size)
		}
	}
	consistent(first, latest)
	var stored struct{ Checkpoints []string }
	api.getJSON("/v1/audit/checkpoints", &stored)
	if len(stored.Checkpoints) < 2 {
		t.Fatalf("%d stored checkpoints, want at least 2", len(stored.Checkpoints))
	}
	for _, n := range stored.Checkpoints {
		cp := api.open([]byte(n))
		if cp.Size > latest.Size {
			continue // signed after latest was read
		}
		if got := refRoot(t, bodies[:cp.Size]); !bytes.Equal(got, cp.Root[:]) {
			t.Fatalf("the stored checkpoint of size %d signs root %x, the entries give %x", cp.Size, cp.Root[:], got)
		}
		consistent(cp, latest)
	}

	// writ's own verifier agrees.
	es := make([]auditlog.Entry, len(bodies))
	for i, b := range bodies {
		es[i] = auditlog.Entry{Seq: int64(i), Body: b}
	}
	if _, err := auditlog.Verify(latest, es, []auditlog.Checkpoint{first}); err != nil {
		t.Fatal(err)
	}
	var ev writ.Event
	if err := json.Unmarshal(bodies[len(bodies)-1], &ev); err != nil || ev.Type != writ.EventTokenIssued {
		t.Fatalf("the last entry is %q (%v), want the token's token.issued", ev.Type, err)
	}
}

// TestAuditReadsWhileWriting reads the checkpoint and proofs again and
// again while runs start concurrently: a read that races with the
// integrator's append sees the log before or after it, never an error
// (it once took a checkpoint read before an append for a rollback).
func TestAuditReadsWhileWriting(t *testing.T) {
	d := prepareDev(t)
	// As fast as it can read: not what the audit rate limit is about.
	d.cfg.Limits[httpapi.ClassAudit] = httpapi.Limit{}
	r := start(t, d.cfg, server.Options{}, d.finish(t))
	anon := client.New(r.url, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var writers, readers sync.WaitGroup
	for range 4 {
		writers.Go(func() {
			for ctx.Err() == nil {
				if _, err := anon.StartRun(ctx, d.sign(t, time.Now(), nil), nil); err != nil && ctx.Err() == nil {
					t.Errorf("start a run: %v", err)
					return
				}
			}
		})
	}
	// The reads below name entry 0 and a tree of size 1: wait until the
	// start-up events are in a signed checkpoint before racing them.
	if _, err := client.New(r.url, d.env.Token).AuditCheckpoint(ctx, 2); err != nil {
		t.Fatal(err)
	}
	var reads, failures atomic.Int64
	for range 8 {
		readers.Go(func() {
			c := &http.Client{}
			for range 150 {
				for _, path := range []string{"/v1/audit/checkpoint", "/v1/audit/proof/inclusion?index=0", "/v1/audit/proof/consistency?from=1"} {
					req, _ := http.NewRequest(http.MethodGet, r.url+path, nil)
					req.Header.Set("Authorization", "Bearer "+d.env.Token)
					resp, err := c.Do(req)
					if err != nil {
						t.Errorf("GET %s: %v", path, err)
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					reads.Add(1)
					if resp.StatusCode != http.StatusOK && failures.Add(1) <= 3 {
						t.Errorf("GET %s while writing: %s: %s", path, resp.Status, b)
					}
				}
			}
		})
	}
	readers.Wait()
	cancel()
	writers.Wait()
	if n := failures.Load(); n > 0 {
		t.Errorf("%d of %d reads failed", n, reads.Load())
	}
}
