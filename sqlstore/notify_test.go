package sqlstore

import (
	"context"
	"testing"

	"github.com/writ-dev/writ"
)

func TestNotifyCursor(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(t *testing.T) *DB) {
		t.Run("Cursor", func(t *testing.T) { testNotifyCursor(t, open) })
		t.Run("StartAtEnd", func(t *testing.T) { testStartNotifyCursor(t, open) })
		t.Run("Invalid", func(t *testing.T) { testNotifyCursorInvalid(t, open) })
	})
}

// testNotifyCursor: an absent cursor reads 0; Set creates it, moves it
// forward, never back, survives a reopen, and writes no event.
func testNotifyCursor(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	if pos, err := db.NotifyCursor(ctx, "webhook:0:abc"); pos != 0 || err != nil {
		t.Fatalf("NotifyCursor(absent) = %d, %v; want 0, nil", pos, err)
	}
	before := lastPos(t, db)
	steps := []struct {
		set, want int64
	}{
		{set: 5, want: 5}, // created
		{set: 9, want: 9}, // forward
		{set: 7, want: 9}, // never back
		{set: 9, want: 9}, // same
		{set: 12, want: 12},
	}
	for _, s := range steps {
		if err := db.SetNotifyCursor(ctx, "webhook:0:abc", s.set); err != nil {
			t.Fatalf("SetNotifyCursor(%d) = %v", s.set, err)
		}
		if pos, err := db.NotifyCursor(ctx, "webhook:0:abc"); pos != s.want || err != nil {
			t.Fatalf("after SetNotifyCursor(%d): NotifyCursor = %d, %v; want %d", s.set, pos, err, s.want)
		}
	}
	if pos, err := db.NotifyCursor(ctx, "webhook:1:def"); pos != 0 || err != nil {
		t.Errorf("NotifyCursor(another name) = %d, %v; want 0, nil", pos, err)
	}
	if after := lastPos(t, db); after != before {
		t.Errorf("moving a cursor wrote events: last outbox position %d, was %d", after, before)
	}
	db = reopen(t, db)
	if pos, err := db.NotifyCursor(ctx, "webhook:0:abc"); pos != 12 || err != nil {
		t.Errorf("after reopen: NotifyCursor = %d, %v; want 12", pos, err)
	}
}

// testStartNotifyCursor: a new cursor starts at the outbox's end (0 when
// empty); an existing one is returned unchanged.
func testStartNotifyCursor(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	if pos, err := db.StartNotifyCursor(ctx, "empty"); pos != 0 || err != nil {
		t.Fatalf("StartNotifyCursor on an empty outbox = %d, %v; want 0", pos, err)
	}
	for range 3 {
		if err := db.AppendEvent(ctx, &writ.Event{Type: "approval.requested", Subject: "apr_x"}); err != nil {
			t.Fatal(err)
		}
	}
	end := lastPos(t, db)
	pos, err := db.StartNotifyCursor(ctx, "new")
	if pos != end || err != nil {
		t.Fatalf("StartNotifyCursor(new) = %d, %v; want the outbox's end %d", pos, err, end)
	}
	if got, _ := db.NotifyCursor(ctx, "new"); got != end {
		t.Errorf("NotifyCursor(new) = %d; want %d (StartNotifyCursor stores it)", got, end)
	}
	if err := db.AppendEvent(ctx, &writ.Event{Type: "approval.granted", Subject: "apr_x"}); err != nil {
		t.Fatal(err)
	}
	if pos, err := db.StartNotifyCursor(ctx, "new"); pos != end || err != nil {
		t.Errorf("StartNotifyCursor(existing) = %d, %v; want it unchanged at %d", pos, err, end)
	}
	if pos, err := db.StartNotifyCursor(ctx, "empty"); pos != 0 || err != nil {
		t.Errorf("StartNotifyCursor(existing at 0) = %d, %v; want 0", pos, err)
	}
}

func testNotifyCursorInvalid(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	_, err := db.NotifyCursor(ctx, "")
	wantError(t, err, writ.KindInvalid, "invalid_cursor")
	_, err = db.StartNotifyCursor(ctx, "")
	wantError(t, err, writ.KindInvalid, "invalid_cursor")
	wantError(t, db.SetNotifyCursor(ctx, "", 1), writ.KindInvalid, "invalid_cursor")
	wantError(t, db.SetNotifyCursor(ctx, "x", -1), writ.KindInvalid, "invalid_cursor")
}
