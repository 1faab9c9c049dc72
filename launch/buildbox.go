package launch

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
)

// SandboxCommand returns a command that runs argv (with env, in dir)
// under the same Landlock sandbox as `writ run`'s CMD, through self's
// sandbox helper (self is the writ binary): read-write only dir,
// read-only the system directories, the selected /etc files and self,
// TCP connect only to ports (none: no TCP at all). writ's builder uses it
// for build recipes: the code they build is agent-written, so it must
// not reach writ's data dir, its keys or the network.
//
// Like CMD's sandbox it does not restrict UDP below ABI 10, nor limit
// CPU, memory or processes. The caller starts and waits for the command,
// and calls started once it has started (it closes the helper's end of the
// spec pipe); the spec is written on file descriptor 3 by a goroutine.
func SandboxCommand(ctx context.Context, self string, argv, env []string, dir string, ports []uint16) (cmd *exec.Cmd, started func(), err error) {
	if len(argv) == 0 {
		return nil, nil, fmt.Errorf("sandbox: no command")
	}
	if ABI() < MinABI {
		return nil, nil, fmt.Errorf("sandbox: Landlock ABI %d is below %d: refusing to run a build unsandboxed", ABI(), MinABI)
	}
	s := planFor(dir, dir, self, nil, 0).spec(argv, env)
	s.Ports = slices.Clone(ports)
	spec, err := json.Marshal(s)
	if err != nil {
		return nil, nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	go func() {
		w.Write(spec)
		w.Close()
	}()
	cmd = exec.CommandContext(ctx, self, SandboxArg)
	cmd.Args[0] = "writ"
	cmd.ExtraFiles = []*os.File{r}
	cmd.Env = []string{}
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd, func() { r.Close() }, nil
}
