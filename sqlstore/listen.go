package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/writ-dev/writ"
)

// The channels on which the writers of several processes (replicas) on
// one PostgreSQL database tell each other of their commits: writ_runs
// carries the comma-separated ids of the runs a batch changed, writ_events
// that a batch stored events.
const (
	runsChannel   = "writ_runs"
	eventsChannel = "writ_events"
)

// listenRetry is the pause before listening again after the listening
// connection broke.
const listenRetry = time.Second

// startListening starts the goroutine that listens for the commits of
// other processes, when the dialect has notifications and the
// configuration wants them. Close stops it.
func (db *DB) startListening() error {
	if !db.d.notify || (db.cfg.OnRunChanged == nil && db.cfg.OnEvents == nil) {
		return nil
	}
	ldb, err := sql.Open(db.d.driver, db.pgDSN)
	if err != nil {
		return fmt.Errorf("sqlstore: listen: %w", err)
	}
	ldb.SetMaxOpenConns(1)
	ldb.SetMaxIdleConns(1)
	ctx, cancel := context.WithCancel(context.Background())
	db.listenStop = cancel
	db.listenDone = make(chan struct{})
	go func() {
		defer close(db.listenDone)
		defer ldb.Close()
		for {
			err := db.listenOnce(ctx, ldb)
			if ctx.Err() != nil {
				return
			}
			db.log.WarnContext(ctx, "listening for other replicas' commits", slog.Any("error", err))
			t := time.NewTimer(listenRetry)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// stopListening stops the listening goroutine, if any, and waits for it.
func (db *DB) stopListening() {
	if db.listenStop != nil {
		db.listenStop()
		<-db.listenDone
	}
}

// listenOnce listens on one connection until it breaks or ctx is done,
// calling Config.OnRunChanged for every run id a commit (of any process,
// this one's included) names and Config.OnEvents for every commit that
// stored events.
func (db *DB) listenOnce(ctx context.Context, ldb *sql.DB) error {
	c, err := ldb.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("sqlstore: listen: the driver connection is a %T, not pgx's", dc)
		}
		pc := sc.Conn()
		for _, ch := range []string{runsChannel, eventsChannel} {
			if _, err := pc.Exec(ctx, "LISTEN "+ch); err != nil {
				return err
			}
		}
		// Events may have been stored while nobody listened.
		if db.cfg.OnEvents != nil {
			db.cfg.OnEvents()
		}
		for {
			n, err := pc.WaitForNotification(ctx)
			if err != nil {
				return err
			}
			switch n.Channel {
			case runsChannel:
				if db.cfg.OnRunChanged == nil {
					continue
				}
				for id := range strings.SplitSeq(n.Payload, ",") {
					if id != "" {
						db.cfg.OnRunChanged(writ.RunID(id))
					}
				}
			case eventsChannel:
				if db.cfg.OnEvents != nil {
					db.cfg.OnEvents()
				}
			}
		}
	})
}
