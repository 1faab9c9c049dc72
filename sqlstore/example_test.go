package sqlstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/sqlstore"
)

func Example() {
	dir, err := os.MkdirTemp("", "writ-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	db, err := sqlstore.Open(ctx, sqlstore.Config{DSN: "sqlite://" + filepath.Join(dir, "writ.db")})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	now := time.Now()
	trig := writ.TriggerRecord{
		ID:        writ.NewULID(now, nil),
		Digest:    "sha256:0a1b",
		Signer:    "alice",
		ExpiresAt: now.Add(time.Hour),
	}
	start := func() *writ.Run {
		return &writ.Run{
			ID:       writ.RunID(writ.NewULID(now, nil)),
			Agent:    "claude",
			Profile:  "refactor",
			Deadline: now.Add(30 * time.Minute),
		}
	}
	run := start()
	err = db.CreateRun(ctx, run, trig,
		&writ.Event{Type: writ.EventTriggerAccepted, Actor: writ.SignerActor("alice")},
		&writ.Event{Type: writ.EventRunStarted, Actor: writ.ActorSystem})
	fmt.Println("first:", err)

	// The same signed trigger cannot start a second run.
	err = db.CreateRun(ctx, start(), trig, &writ.Event{Type: writ.EventRunStarted})
	fmt.Println("again:", writ.ErrorCode(err))

	if _, err := db.TransitionRun(ctx, run.ID, writ.RunEnded, "done", &writ.Event{Actor: writ.HumanActor("alice")}); err != nil {
		log.Fatal(err)
	}
	evs, err := db.Events(ctx, 0, 10)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range evs {
		fmt.Println(e.Pos, e.Type)
	}
	// Output:
	// first: <nil>
	// again: replay
	// 1 trigger.accepted
	// 2 run.started
	// 3 run.ended
}
