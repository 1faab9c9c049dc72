package sqlstore

import (
	"context"
	"testing"

	"github.com/writ-dev/writ"
)

// testArtifactEvents: events filed under an artifact digest come back by
// digest (and kind), in commit order, once each; a reference without a
// digest rolls the whole write back.
func testArtifactEvents(t *testing.T, open func(t *testing.T) *DB) {
	db := open(t)
	ctx := context.Background()
	a, b := "sha256:aa", "sha256:bb"
	build := &writ.Event{Type: writ.EventBuild, Actor: "writ"}
	if err := db.AppendArtifactEvent(ctx, build, writ.ArtifactRef{Digest: a, Kind: "build"}, writ.ArtifactRef{Digest: b, Kind: "build"}); err != nil {
		t.Fatal(err)
	}
	rel := &writ.Event{Type: writ.EventRelease, Actor: "writ"}
	if err := db.AppendArtifactEvent(ctx, rel, writ.ArtifactRef{Digest: a, Kind: "release", Environment: "staging"}); err != nil {
		t.Fatal(err)
	}
	bad := &writ.Event{Type: writ.EventRelease, Actor: "writ"}
	if err := db.AppendArtifactEvent(ctx, bad, writ.ArtifactRef{Digest: a, Kind: "release"}, writ.ArtifactRef{Kind: "release"}); writ.ErrorKind(err) != writ.KindInvalid {
		t.Fatalf("a reference without digest: %v; want invalid", err)
	}
	if _, err := db.EntryByID(ctx, bad.ID); writ.ErrorKind(err) != writ.KindNotFound {
		t.Errorf("the refused event was stored: %v", err)
	}
	es, err := db.ArtifactEntries(ctx, a, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].ID != build.ID || es[1].ID != rel.ID {
		t.Fatalf("entries of a: %+v; want the build then the release", es)
	}
	if es, err = db.ArtifactEntries(ctx, a, "release"); err != nil || len(es) != 1 || es[0].Type != writ.EventRelease {
		t.Errorf("releases of a: %+v, %v", es, err)
	}
	if es, err = db.ArtifactEntries(ctx, b, ""); err != nil || len(es) != 1 || es[0].ID != build.ID {
		t.Errorf("entries of b: %+v, %v", es, err)
	}
	if es, err = db.ArtifactEntries(ctx, "sha256:cc", ""); err != nil || len(es) != 0 {
		t.Errorf("entries of an unknown digest: %+v, %v", es, err)
	}
}
