package mcpgw

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// urlCases are strings an MCP server's URL parser reads as a URL of a host
// (or not), each an attempt to name evil.example so that a strict reader
// misses it. want is every host fact writ must find.
var urlCases = []struct {
	in   string
	want []string
}{
	{"https://docs.example.org/x", []string{"docs.example.org"}},
	{" https://evil.example/x", []string{"evil.example"}},
	{"\thttps://evil.example/x", []string{"evil.example"}},
	{"\x00\x1f https://evil.example/x \x01", []string{"evil.example"}},
	{"see https://evil.example/x", []string{"evil.example"}},
	{"fetch docs at https://docs.example.org/a and then http://evil.example/b please", []string{"docs.example.org", "evil.example"}},
	{"HTTPS://EVIL.EXAMPLE/x", []string{"evil.example"}},
	{"ht\ttps://evil.ex\nample/x", []string{"evil.ex", "evil.example"}}, // the words are URLs too
	{"https:\\\\evil.example\\x", []string{"evil.example"}},
	{"https:evil.example/x", []string{"evil.example"}},
	{"https:/\\/evil.example", []string{"evil.example"}},
	{"https://docs.example.org@evil.example/", []string{"evil.example"}},
	{"https://user:pa@ss@evil.example:8443/", []string{"evil.example"}},
	{"https://evil.example\\@docs.example.org/", []string{"evil.example"}},
	{"https://evil.example#@docs.example.org/", []string{"evil.example"}},
	{"https://evil%2Eexample/", []string{"evil.example"}},
	{"https://%65vil.example/", []string{"evil.example"}},
	{"https://ｅｖｉｌ．ｅｘａｍｐｌｅ/", []string{"evil.example"}},
	{"https://evil。example/", []string{"evil.example"}},
	{"https://bücher.example/", []string{"xn--bcher-kva.example"}},
	{"https://xn--bcher-kva.example/", []string{"xn--bcher-kva.example"}},
	{"https://evil.example./", []string{"evil.example."}},
	{"http://2130706433/", []string{"127.0.0.1"}},
	{"http://0177.0.0.1/", []string{"127.0.0.1"}},
	{"http://0x7f.1/", []string{"127.0.0.1"}},
	{"http://0x7F000001/", []string{"127.0.0.1"}},
	{"http://127.1/", []string{"127.0.0.1"}},
	{"http://127.0.1/", []string{"127.0.0.1"}},
	{"http://0/", []string{"0.0.0.0"}},
	{"http://169.254.169.254./latest", []string{"169.254.169.254"}},
	{"http://[::1]/", []string{"::1"}},
	{"http://[0:0:0:0:0:0:0:1]:80/", []string{"::1"}},
	{"http://[::ffff:127.0.0.1]/", []string{"::ffff:7f00:1"}},
	{"http://[2001:DB8::1:0:0:1]/", []string{"2001:db8::1:0:0:1"}},
	{"ws://evil.example/socket", []string{"evil.example"}},
	{"wss://evil.example/socket", []string{"evil.example"}},
	{"ftp://evil.example/f", []string{"evil.example"}},
	{"xhttps://evil.example/x", []string{"evil.example"}},
	{"git+ssh://Evil.example/repo.git", []string{"evil.example"}},
	{"file://evil.example/share/x", []string{"evil.example"}},
	{"file://localhost/etc/passwd", nil},
	{"file:///etc/passwd", nil},
	{"mailto:someone@evil.example", nil},
	{"note: remember this", nil},
	{"https://", []string{unparseable}},
	{"https://exa mple.org/", []string{unparseable, "exa"}},
	{"http://256.256.256.256/", []string{unparseable}},
	{"http://[::1/", []string{unparseable}},
	{"plain text without any url", nil},
}

// hostsOf is every host fact writ finds in s.
func hostsOf(s string) []string {
	var out []string
	add := func(h string) {
		if h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	if f, ok := wholeURL(s); ok {
		add(f.host)
	}
	fs, _ := embeddedURLs(s, maxURLCandidates)
	for _, f := range fs {
		add(f.host)
	}
	slices.Sort(out)
	return out
}

func TestURLHosts(t *testing.T) {
	for _, c := range urlCases {
		want := slices.Clone(c.want)
		slices.Sort(want)
		if got := hostsOf(c.in); !slices.Equal(got, want) {
			t.Errorf("hosts of %q = %q, want %q", c.in, got, want)
		}
	}
}

func TestFileURLPaths(t *testing.T) {
	for in, want := range map[string]string{
		"file:///etc/passwd":               "/etc/passwd",
		" FILE:///ws/a%20b.txt":            "/ws/a b.txt",
		"file:/etc/passwd":                 "/etc/passwd",
		"file:etc/passwd":                  "/etc/passwd",
		"file://localhost/etc/passwd":      "/etc/passwd",
		"file:\\\\\\ws\\..\\etc\\shadow":   "/ws/../etc/shadow",
		"file:///ws/%2e%2e/etc/passwd?x#y": "/ws/../etc/passwd",
	} {
		f, ok := wholeURL(in)
		if !ok || !f.isFile || f.filePath() != want {
			t.Errorf("file path of %q = %q (file %v), want %q", in, f.filePath(), f.isFile, want)
		}
	}
}

// nodeURL asks Node's WHATWG URL parser (`new URL(s)`) about strings. It
// is started once per process and answers one JSON array per line.
type nodeURL struct {
	mu  sync.Mutex
	in  io.Writer
	out *bufio.Reader
}

type nodeAnswer struct {
	OK       bool   `json:"ok"`
	Protocol string `json:"protocol"`
	Hostname string `json:"hostname"`
}

const nodeURLScript = `
const rl = require('readline').createInterface({input: process.stdin});
rl.on('line', (l) => {
  const out = JSON.parse(l).map((s) => {
    try { const u = new URL(s); return {ok: true, protocol: u.protocol, hostname: u.hostname}; }
    catch (e) { return {ok: false}; }
  });
  process.stdout.write(JSON.stringify(out) + '\n');
});`

var (
	nodeOnce sync.Once
	nodeProc *nodeURL
	nodeErr  string
)

// startNode starts the Node helper, or says why it cannot.
func startNode() (*nodeURL, string) {
	nodeOnce.Do(func() {
		bin, err := exec.LookPath("node")
		if err != nil {
			nodeErr = "node is not installed (scripts/test.sh needs it for the agent tests): the comparison with Node's URL parser is skipped"
			return
		}
		cmd := exec.Command(bin, "-e", nodeURLScript)
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			nodeErr = "starting node: " + err.Error()
			return
		}
		nodeProc = &nodeURL{in: in, out: bufio.NewReaderSize(out, 1<<20)}
	})
	return nodeProc, nodeErr
}

func (n *nodeURL) parse(t *testing.T, ss []string) []nodeAnswer {
	t.Helper()
	b, err := json.Marshal(ss)
	if err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, err := n.in.Write(append(b, '\n')); err != nil {
		t.Fatalf("writing to node: %v", err)
	}
	type read struct {
		line []byte
		err  error
	}
	ch := make(chan read, 1)
	go func() {
		line, err := n.out.ReadBytes('\n')
		ch <- read{line, err}
	}()
	var line []byte
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("reading node's answer to %q: %v", ss, r.err)
		}
		line = r.line
	case <-time.After(time.Minute):
		t.Fatalf("node did not answer about %q within a minute", ss)
	}
	var out []nodeAnswer
	if err := json.Unmarshal(line, &out); err != nil || len(out) != len(ss) {
		t.Fatalf("node answered %q: %v", line, err)
	}
	return out
}

// FuzzURLHost compares writ's reading of URLs in a string with Node's
// `new URL(...)` (a WHATWG parser, as MCP servers written for Node use):
// whatever host Node finds in the whole string or in any of its
// space-separated words, writ finds it too; where Node reads the whole
// string as a URL with a host, writ reads the same host. writ may find
// more (a URL Node refuses is still a host nobody scoped). Without node
// the comparison is skipped, and fails under WRIT_TEST_REQUIRE_ALL=1.
func FuzzURLHost(f *testing.F) {
	for _, c := range urlCases {
		f.Add(c.in)
	}
	for _, s := range []string{"http://a.b:99999/", "http://1.2.3.4.5/", "http://0x100000000/", "http://[1:2:3:4:5:6:1.2.3.4]/", "http://[::1.2.3.04]/",
		"http://a..b/", "http://xn--/", "http://xn--a.example/", "http://a\u200db.example/", "http://ab--c.example/", "http://_x.example/", "http://*.example/",
		"http://%zz.example/", "http://%c3%bc.example/", "https://\u0661.example/", "foo://HOST:1/x", "foo://h%C3%BCst/", "file://C:/x", "file://[::1]/x",
		"http://evil.example:80@docs.example.org", "http://09.1/", "http://0x.1/", "http://1.0x/", "http://4294967295/", "http://4294967296/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		facts := hostsOf(s)
		whole, isURL := wholeURL(s)
		if whole.host != "" && !slices.Contains(facts, whole.host) {
			t.Fatalf("%q: the whole string's host %q is not among the facts %q", s, whole.host, facts)
		}
		if !utf8.ValidString(s) {
			return // not a string a JSON argument can carry
		}
		n, why := startNode()
		if n == nil {
			if os.Getenv("WRIT_TEST_REQUIRE_ALL") == "1" {
				t.Fatalf("%s, and WRIT_TEST_REQUIRE_ALL=1", why)
			}
			t.Skip(why)
		}
		words := append([]string{s}, strings.Fields(s)...)
		answers := n.parse(t, words)
		for i, a := range answers {
			if !a.OK || a.Hostname == "" {
				continue
			}
			host := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(a.Hostname, "["), "]"))
			if !slices.Contains(facts, host) {
				t.Fatalf("Node reads %q as a URL of host %q; writ's facts of %q are %q", words[i], host, s, facts)
			}
			if i == 0 && (!isURL || whole.host != host) {
				t.Fatalf("Node reads %q as a URL of host %q; writ reads host %q (a URL: %v)", s, host, whole.host, isURL)
			}
		}
	})
}
