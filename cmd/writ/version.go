package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// versionCommand is `writ version`.
type versionCommand struct{ noFlags }

func (c *versionCommand) Run(ctx context.Context, e *env, args []string) error {
	fmt.Fprintf(e.stdout, "writ %s (%s %s/%s)\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}
