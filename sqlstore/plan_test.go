package sqlstore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestQueryPlans: the hot lookups use their indexes. A query that stops
// matching a partial index's condition still answers correctly, only
// slower and slower as the table grows, so nothing else would notice.
func TestQueryPlans(t *testing.T) {
	db, err := Open(context.Background(), Config{DSN: "sqlite://" + filepath.Join(t.TempDir(), "plan.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct {
		query, index string
		args         []any
	}{
		{decisionByCallRef, "decisions_call_ref", []any{"r", "v", "c"}},
		{"SELECT " + approvalCols + " FROM approvals WHERE run = ? AND subject_kind = ? AND subject_digest = ? AND state IN ('pending', 'approved')", "approvals_live", []any{"r", "k", "d"}},
		{"SELECT " + approvalCols + " FROM approvals WHERE run = ? AND slot = ? AND state IN ('pending', 'approved') ORDER BY created_at, id", "approvals_slot", []any{"r", "s"}},
	} {
		rows, err := db.rdb.Query("EXPLAIN QUERY PLAN "+c.query, c.args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if !strings.Contains(strings.Join(plan, "; "), "USING INDEX "+c.index) {
			t.Errorf("%s\n  plan %q, want it to use %s", c.query, plan, c.index)
		}
	}
}
