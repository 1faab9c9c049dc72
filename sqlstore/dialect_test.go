package sqlstore

import "testing"

func TestDialectSQL(t *testing.T) {
	pg := &dialect{numbered: true}
	tests := []struct {
		name, got, want string
	}{
		{"sqlite q", sqliteDialect.q("SELECT a FROM t WHERE b = ? AND c = ?"), "SELECT a FROM t WHERE b = ? AND c = ?"},
		{"numbered q", pg.q("SELECT a FROM t WHERE b = ? AND c = ?"), "SELECT a FROM t WHERE b = $1 AND c = $2"},
		{"insertIgnore", sqliteDialect.insertIgnore("t", "a, b", "a", "b", "c"),
			"INSERT INTO t (a, b, c) VALUES (?, ?, ?) ON CONFLICT (a, b) DO NOTHING"},
		{"numbered insertIgnore", pg.insertIgnore("t", "a", "a", "b"),
			"INSERT INTO t (a, b) VALUES ($1, $2) ON CONFLICT (a) DO NOTHING"},
		{"upsert", sqliteDialect.upsert("t", "a", []string{"a", "b", "c"}, "b", "c"),
			"INSERT INTO t (a, b, c) VALUES (?, ?, ?) ON CONFLICT (a) DO UPDATE SET b = excluded.b, c = excluded.c"},
		{"placeholders 0", placeholders(0), ""},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q; want %q", tt.name, tt.got, tt.want)
		}
	}
}
