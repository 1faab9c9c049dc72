package gitgw

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// pkt-line framing (gitprotocol-common): four hex digits give the length
// of the line including themselves; "0000" is a flush packet. Lengths 1–3
// are special packets (delim, response-end) of protocol v2.
const (
	maxPktLen   = 65520
	maxCommands = 1000
	zeroID      = "0000000000000000000000000000000000000000"
)

var errFlush = errors.New("flush packet")

// readPkt reads one pkt-line and returns its payload; a flush packet
// returns errFlush.
func readPkt(r *bufio.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	var n [2]byte
	if _, err := hex.Decode(n[:], hdr[:]); err != nil {
		return nil, fmt.Errorf("bad pkt-line length %q", hdr[:])
	}
	l := int(n[0])<<8 | int(n[1])
	switch {
	case l == 0:
		return nil, errFlush
	case l < 4:
		return nil, fmt.Errorf("unexpected special packet %04x", l)
	case l > maxPktLen:
		return nil, fmt.Errorf("pkt-line of %d bytes is over the limit of %d", l, maxPktLen)
	}
	buf := make([]byte, l-4)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, io.ErrUnexpectedEOF
	}
	return buf, nil
}

// pkt frames payload as one pkt-line.
func pkt(payload string) []byte {
	return fmt.Appendf(nil, "%04x%s", len(payload)+4, payload)
}

// command is one ref update a push asks for.
type command struct {
	Old, New, Ref string
}

func (c command) isDelete() bool { return c.New == zeroID }
func (c command) isCreate() bool { return c.Old == zeroID }

// pushRequest is the head of a receive-pack request: the ref update
// commands, the client's capabilities and its push options.
type pushRequest struct {
	Commands []command
	Caps     map[string]string
	Options  []string
}

func (p *pushRequest) has(capability string) bool { _, ok := p.Caps[capability]; return ok }

// readPushRequest parses the commands of a receive-pack request up to the
// pack (gitprotocol-pack, "Reference Update Request"):
//
//	update-request = *shallow ( command-list | push-cert ) [packfile]
//	command-list   = PKT-LINE(command NUL capability-list) *PKT-LINE(command) flush-pkt
//	command        = old-id SP new-id SP name
//
// followed by push options (when the client asked for push-options) up to
// a flush. Push certificates and shallow lines are refused: writ's
// advertisement offers neither. An empty request (a lone flush: git's
// probe before a large push) has no commands.
func readPushRequest(r *bufio.Reader) (*pushRequest, error) {
	req := &pushRequest{Caps: map[string]string{}}
	for i := 0; ; i++ {
		line, err := readPkt(r)
		if err == errFlush {
			break
		}
		if err != nil {
			return nil, err
		}
		if i == 0 {
			cmd, caps, ok := bytes.Cut(line, []byte{0})
			if ok {
				for _, c := range strings.Fields(string(caps)) {
					k, v, _ := strings.Cut(c, "=")
					req.Caps[k] = v
				}
			}
			line = cmd
		}
		if i >= maxCommands {
			return nil, fmt.Errorf("more than %d ref updates in one push", maxCommands)
		}
		s := strings.TrimSuffix(string(line), "\n")
		if strings.HasPrefix(s, "shallow ") || strings.HasPrefix(s, "push-cert") {
			return nil, fmt.Errorf("shallow pushes and push certificates are not supported")
		}
		parts := strings.SplitN(s, " ", 3)
		if len(parts) != 3 || !isHexID(parts[0]) || !isHexID(parts[1]) {
			return nil, fmt.Errorf("malformed ref update %q", truncate(s, 100))
		}
		req.Commands = append(req.Commands, command{Old: parts[0], New: parts[1], Ref: parts[2]})
	}
	if len(req.Commands) > 0 && req.has("push-options") {
		for {
			line, err := readPkt(r)
			if err == errFlush {
				break
			}
			if err != nil {
				return nil, err
			}
			if len(req.Options) >= 100 {
				return nil, fmt.Errorf("more than 100 push options")
			}
			req.Options = append(req.Options, strings.TrimSuffix(string(line), "\n"))
		}
	}
	return req, nil
}

func isHexID(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// firstCommand returns the command of a protocol v2 request
// ("command=fetch"), or "" for a v0/v1 request or an unreadable one. It
// only peeks: r is left where it was.
func firstCommand(r *bufio.Reader) string {
	hdr, err := r.Peek(4)
	if err != nil {
		return ""
	}
	var n [2]byte
	if _, err := hex.Decode(n[:], hdr); err != nil {
		return ""
	}
	l := int(n[0])<<8 | int(n[1])
	if l < 4 || l > 4+64 {
		return ""
	}
	b, err := r.Peek(l)
	if err != nil {
		return ""
	}
	cmd, ok := strings.CutPrefix(strings.TrimSuffix(string(b[4:]), "\n"), "command=")
	if !ok {
		return ""
	}
	return cmd
}

// reportWriter writes receive-pack's answer: report-status lines, and
// messages the user sees as "remote: …", on side-band channels 1 and 2
// when the client asked for side-band-64k (gitprotocol-pack, "Report
// Status" and "Sideband").
type reportWriter struct {
	sideband bool
	chunk    int // the largest side-band payload: 65515, or 995 for side-band
	report   bool
	buf      bytes.Buffer
}

func newReportWriter(req *pushRequest) *reportWriter {
	chunk := maxPktLen - 5
	if !req.has("side-band-64k") {
		chunk = 1000 - 5
	}
	return &reportWriter{
		chunk:    chunk,
		sideband: req.has("side-band-64k") || req.has("side-band"),
		report:   req.has("report-status") || req.has("report-status-v2"),
	}
}

// message adds a line shown to the user as "remote: <line>" (only
// possible with side-band; without it git shows the ng reasons only).
func (rw *reportWriter) message(line string) {
	if !rw.sideband {
		return
	}
	for l := range strings.SplitSeq(strings.TrimRight(line, "\n"), "\n") {
		l = truncate(l, rw.chunk-8)
		rw.buf.Write(pkt("\x02" + l + "\n"))
	}
}

// status adds the report: "unpack ok|<error>" then one "ok <ref>" or
// "ng <ref> <reason>" per command, and finishes the response.
func (rw *reportWriter) status(unpack string, refs []refStatus) []byte {
	if rw.report {
		var inner bytes.Buffer
		inner.Write(pkt("unpack " + unpack + "\n"))
		for _, s := range refs {
			if s.ok {
				inner.Write(pkt("ok " + s.ref + "\n"))
			} else {
				inner.Write(pkt("ng " + s.ref + " " + oneLine(s.reason) + "\n"))
			}
		}
		inner.WriteString("0000")
		if rw.sideband {
			b := inner.Bytes()
			for len(b) > 0 {
				n := min(len(b), rw.chunk)
				rw.buf.Write(pkt("\x01" + string(b[:n])))
				b = b[n:]
			}
		} else {
			rw.buf.Write(inner.Bytes())
		}
	}
	if rw.sideband {
		rw.buf.WriteString("0000")
	}
	return rw.buf.Bytes()
}

type refStatus struct {
	ref    string
	ok     bool
	reason string
}

func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return truncate(s, 900)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
