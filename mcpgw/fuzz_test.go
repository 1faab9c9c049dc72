package mcpgw

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzCheckHeaders: whatever the body and headers, checkHeaders never
// panics, hands the SDK the body unchanged, and never lets a 2026-07-28
// request through whose Mcp-Method (or, for a tool call, Mcp-Name) differs
// from what the body says.
func FuzzCheckHeaders(f *testing.F) {
	f.Add(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`, "tools/call", "echo", true)
	f.Add(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`, "tools/call", "get-env", true)
	f.Add(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, "tools/list", "", false)
	f.Add(`{"jsonrpc":"2.0","id":1,"result":{}}`, "", "", true)
	f.Add(`{"method":"tools/call","Method":"tools/list","params":{"name":"a","Name":"b"}}`, "tools/call", "a", true)
	f.Fuzz(func(t *testing.T, body, method, name string, era bool) {
		r := httptest.NewRequest(http.MethodPost, "/mcp/x", strings.NewReader(body))
		if era {
			r.Header.Set("Mcp-Protocol-Version", newEra)
		}
		if method != "" {
			r.Header.Set("Mcp-Method", method)
		}
		if name != "" {
			r.Header.Set("Mcp-Name", name)
		}
		err := checkHeaders(r)
		rest, _ := io.ReadAll(r.Body)
		if (era || method != "" || name != "") && string(rest) != body {
			t.Fatalf("the body handed on differs from the one received")
		}
		if err != nil || !era {
			return
		}
		var msg struct {
			Method *string `json:"method"`
			Params struct {
				Name string `json:"name"`
			} `json:"params"`
		}
		if json.Unmarshal([]byte(body), &msg) != nil || msg.Method == nil {
			return
		}
		if *msg.Method != method {
			t.Fatalf("accepted Mcp-Method %q for a body whose method is %q", method, *msg.Method)
		}
		if *msg.Method == "tools/call" && msg.Params.Name != name {
			t.Fatalf("accepted Mcp-Name %q for a call of %q", name, msg.Params.Name)
		}
	})
}
