package httpapi

import (
	"context"
	"encoding/binary"
	"net/http"
	"strconv"
	"strings"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/auditlog"
)

// The audit log's read path in the C2SP tlog-tiles layout, under
// /v1/audit/tlog/: checkpoint, tile/<L>/<N>[.p/<W>] and
// tile/entries/<N>[.p/<W>], so standard tlog tooling can fetch and verify
// the log without writ's own client. Tiles are immutable once full, so
// they are served cacheable; partial tiles and the checkpoint are not.

// TileLog is what the tile routes need of the audit log.
type TileLog interface {
	TileData(ctx context.Context, level int, n int64, width int) ([]byte, error)
}

// parseTilePath parses "<N>[.p/<W>]" where N is written in groups of three
// digits, every group but the last prefixed with "x" (C2SP tlog-tiles).
func parseTilePath(s string) (n int64, width int, err error) {
	bad := writ.Errorf(writ.KindInvalid, "invalid_tile", "tile path %q: want N as x001/x234/067 with an optional .p/W", s)
	width = auditlog.TileWidth
	if base, w, ok := strings.Cut(s, ".p/"); ok {
		width, err = strconv.Atoi(w)
		if err != nil || width < 1 || width >= auditlog.TileWidth || strconv.Itoa(width) != w {
			return 0, 0, bad
		}
		s = base
	}
	parts := strings.Split(s, "/")
	for i, p := range parts {
		last := i == len(parts)-1
		if !last {
			if !strings.HasPrefix(p, "x") {
				return 0, 0, bad
			}
			p = p[1:]
		}
		if len(p) != 3 || strings.Trim(p, "0123456789") != "" {
			return 0, 0, bad
		}
		d, _ := strconv.Atoi(p)
		n = n*1000 + int64(d)
		if n < 0 || len(parts) > 7 {
			return 0, 0, bad
		}
	}
	return n, width, nil
}

func (a *API) tlogCheckpoint(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-cache")
	return a.auditCheckpoint(w, r)
}

func (a *API) tlogTile(w http.ResponseWriter, r *http.Request) error {
	level, err := strconv.Atoi(r.PathValue("level"))
	if err != nil || r.PathValue("level") != strconv.Itoa(level) {
		return writ.Errorf(writ.KindInvalid, "invalid_tile", "tile level %q is not a number", r.PathValue("level"))
	}
	n, width, err := parseTilePath(r.PathValue("path"))
	if err != nil {
		return err
	}
	data, err := a.cfg.Tiles.TileData(r.Context(), level, n, width)
	if err != nil {
		return err
	}
	return writeTile(w, data, width)
}

// tlogEntries serves an entry bundle: each entry as a big-endian uint16
// length and the exact stored bytes.
func (a *API) tlogEntries(w http.ResponseWriter, r *http.Request) error {
	n, width, err := parseTilePath(r.PathValue("path"))
	if err != nil {
		return err
	}
	start := n * auditlog.TileWidth
	es, err := a.cfg.AuditStore.LogEntries(r.Context(), start, start+int64(width))
	if err != nil {
		return err
	}
	if len(es) != width || a.cfg.Audit.Size() < start+int64(width) {
		return writ.Errorf(writ.KindNotFound, "tile_not_found", "entry bundle %d of width %d is not in the signed tree", n, width)
	}
	var out []byte
	for _, e := range es {
		if len(e.Body) > 0xffff {
			return writ.Errorf(writ.KindInternal, "internal", "entry %d is over 64 KiB", e.Seq)
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(e.Body)))
		out = append(out, e.Body...)
	}
	return writeTile(w, out, width)
}

func writeTile(w http.ResponseWriter, data []byte, width int) error {
	w.Header().Set("Content-Type", "application/octet-stream")
	if width == auditlog.TileWidth {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(data)
	return err
}
