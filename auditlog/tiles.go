package auditlog

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/writ-dev/writ"
)

// TileHeight is the height of the tiles the log serves in the C2SP
// tlog-tiles layout: 8, so a full tile holds 256 hashes.
const TileHeight = 8

// TileWidth is the number of hashes (or entries) in a full tile.
const TileWidth = 1 << TileHeight

// TileData returns tile (level, n) of width hashes (1..256), as C2SP
// tlog-tiles serves it: the width hashes of tree level level×8, from index
// n×256, concatenated. The tile must lie within the latest signed
// checkpoint: a tile past it, or wider than the hashes that exist, is a
// *writ.Error of KindNotFound (a client asks for the partial width its
// checkpoint implies).
func (l *Log) TileData(ctx context.Context, level int, n int64, width int) ([]byte, error) {
	if level < 0 || level > 7 || n < 0 || width < 1 || width > TileWidth {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_tile", "tile level %d, index %d, width %d is not a valid tile", level, n, width)
	}
	size, err := l.ensure(ctx, 0)
	if err != nil {
		return nil, err
	}
	// Hashes at tree level 8·level: one per complete 256^level leaves.
	have := size >> (TileHeight * level)
	if n*TileWidth+int64(width) > have {
		return nil, writ.Errorf(writ.KindNotFound, "tile_not_found", "tile %d/%d of width %d is not in the tree of %d entries", level, n, width, size)
	}
	data, err := tlog.ReadTileData(tlog.Tile{H: TileHeight, L: level, N: n, W: width}, l.reader(ctx))
	if err != nil {
		return nil, fmt.Errorf("audit log: tile %d/%d: %w", level, n, err)
	}
	return data, nil
}
