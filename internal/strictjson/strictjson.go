// Package strictjson decodes JSON strictly. It is part of the writ server and
// has no API stability.
//
// Go's encoding/json (v1) matches object keys to struct fields
// case-insensitively, keeps the last of duplicate keys and ignores unknown
// keys. For signed documents (triggers, approvals) that is dangerous: two
// parsers may read different meanings out of the same signed bytes. [Decode]
// walks the tokens of the input against the target type before handing the
// bytes to json.Unmarshal, and refuses anything ambiguous.
//
// # Security properties
//
// [Decode] refuses, each with its own [Error] code:
//
//   - a leading UTF-8 byte order mark ([CodeBOM]);
//   - input that is not valid UTF-8, or a \u escape that is a lone or
//     misordered UTF-16 surrogate ([CodeInvalidUTF8]);
//   - a syntax error ([CodeSyntax]) or anything but whitespace after the top
//     value ([CodeTrailingData]);
//   - objects and arrays nested deeper than [MaxDepth] ([CodeTooDeep]);
//   - the same key twice in one object ([CodeDuplicateKey]) and two keys in
//     one object that are equal under Unicode case folding but not equal
//     ([CodeCaseVariantKey]), in every object of the document, whatever the
//     target type;
//   - a key that is not exactly the JSON name of a field of the target struct
//     ([CodeUnknownField]), in nested structs, slices and arrays of structs,
//     pointers, map values and embedded structs;
//   - a value of the wrong type for its field ([CodeType]);
//   - a top-level value that is not an object when the target is a struct
//     ([CodeNotObject]).
//
// Keys of maps are free (but still checked for duplicates and case
// variants). Values whose type implements [json.Unmarshaler] and values of
// interface type are opaque: their keys are not matched against fields, but
// their objects are still checked for duplicate and case-variant keys and
// for depth. Keys are escaped with strconv.QuoteToASCII before they
// appear in a message (as ASCII, with \u escapes).
package strictjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of objects and arrays Decode accepts. The
// top-level object is at depth 1.
const MaxDepth = 32

// Error codes, stable: callers use them as the codes of their own errors.
const (
	CodeBOM            = "bom"
	CodeInvalidUTF8    = "invalid_utf8"
	CodeSyntax         = "syntax"
	CodeTrailingData   = "trailing_data"
	CodeTooDeep        = "too_deep"
	CodeDuplicateKey   = "duplicate_key"
	CodeCaseVariantKey = "case_variant_key"
	CodeUnknownField   = "unknown_field"
	CodeType           = "type"
	CodeNotObject      = "not_object"
)

// Error is a refusal of the input. Path locates the offending value in
// JSONPath-like form ("$.scope.repos[0].name"); Msg says what is wrong and,
// where it can, what was meant.
type Error struct {
	Code string
	Path string
	Msg  string
}

// Error returns "strictjson: <code> at <path>: <msg>".
func (e *Error) Error() string {
	return "strictjson: " + e.Code + " at " + e.Path + ": " + e.Msg
}

func errorf(code, path, format string, args ...any) *Error {
	return &Error{Code: code, Path: path, Msg: clip(fmt.Sprintf(format, args...))}
}

// maxMsg caps messages, which may quote parts of the input.
const maxMsg = 300

// clip shortens s to at most maxMsg bytes, on a rune boundary.
func clip(s string) string {
	if len(s) <= maxMsg {
		return s
	}
	cut := maxMsg
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// asciiSafe escapes every byte of s outside printable ASCII, for error
// texts from elsewhere that may quote the input.
func asciiSafe(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			q := strconv.QuoteToASCII(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}

var (
	bom             = []byte("\xef\xbb\xbf")
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// Decode decodes data into v, which must be a non-nil pointer, after
// checking data strictly (see the package documentation). On success *v is
// replaced as a whole (nothing of its previous value is merged in, unlike
// json.Unmarshal). On a refusal it returns an *Error and leaves *v
// untouched. A v that is not a non-nil pointer is a programming error,
// reported as a plain error.
func Decode(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("strictjson: Decode needs a non-nil pointer, not %T", v)
	}
	if bytes.HasPrefix(data, bom) {
		return errorf(CodeBOM, "$", "the input starts with a UTF-8 byte order mark; send plain UTF-8 without a BOM")
	}
	if !utf8.Valid(data) {
		off := invalidUTF8Offset(data)
		return errorf(CodeInvalidUTF8, "$", "the input is not valid UTF-8 (first bad byte at offset %d)", off)
	}
	if off, ok := badSurrogate(data); !ok {
		return errorf(CodeInvalidUTF8, "$", "the \\u escape at offset %d is not a valid UTF-16 surrogate pair", off)
	}
	w := walker{data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	w.dec.UseNumber() // numbers are only looked at, never converted here
	if err := w.top(rv.Type().Elem()); err != nil {
		return err
	}
	// Decode into a fresh value so that a late type error leaves v as it was.
	fresh := reflect.New(rv.Type().Elem())
	if err := json.Unmarshal(data, fresh.Interface()); err != nil {
		return typeError(err)
	}
	rv.Elem().Set(fresh.Elem())
	return nil
}

func typeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		path := "$"
		if te.Field != "" {
			path += "." + te.Field
		}
		return errorf(CodeType, path, "cannot use JSON %s as %s", asciiSafe(clip(te.Value)), te.Type)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return errorf(CodeSyntax, "$", "%s (offset %d)", se.Error(), se.Offset)
	}
	// An error from a json.Unmarshaler that the walk did not see (for
	// example on a null value).
	return errorf(CodeType, "$", "%s", asciiSafe(clip(err.Error())))
}

type walker struct {
	data []byte
	dec  *json.Decoder
}

func (w *walker) top(t reflect.Type) error {
	if st := indirectType(t); st != nil && st.Kind() == reflect.Struct && !opaque(st) {
		first := firstNonSpace(w.data)
		if first != '{' && first != 0 {
			return errorf(CodeNotObject, "$", "the top-level value must be a JSON object")
		}
	}
	tok, err := w.token("$")
	if err != nil {
		return err
	}
	if err := w.value(tok, 0, t, "$", 0); err != nil {
		return err
	}
	off := w.dec.InputOffset()
	if rest := w.data[off:]; len(bytes.TrimLeft(rest, " \t\r\n")) != 0 {
		return errorf(CodeTrailingData, "$", "unexpected data after the top-level value at offset %d; send exactly one JSON value", off+int64(len(rest)-len(bytes.TrimLeft(rest, " \t\r\n"))))
	}
	return nil
}

// token reads the next token, turning decoder errors into *Error.
func (w *walker) token(path string) (json.Token, error) {
	tok, err := w.dec.Token()
	if err == nil {
		return tok, nil
	}
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return nil, errorf(CodeSyntax, path, "%s (offset %d)", se.Error(), se.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, errorf(CodeSyntax, path, "unexpected end of input")
	default:
		return nil, errorf(CodeSyntax, path, "%s", asciiSafe(clip(err.Error())))
	}
}

// value checks the value that starts with tok against type t (nil: any
// value, no field checks). start is the input offset before tok (it may
// include whitespace and a separator); depth is the nesting depth of the
// enclosing container.
func (w *walker) value(tok json.Token, start int64, t reflect.Type, path string, depth int) error {
	t = indirectType(t)
	if t != nil && opaque(t) {
		if err := w.value(tok, start, nil, path, depth); err != nil {
			return err
		}
		if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
			return w.preUnmarshal(t, w.data[start:w.dec.InputOffset()], path)
		}
		return nil
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar; json.Unmarshal checks its type
	}
	if depth+1 > MaxDepth {
		return errorf(CodeTooDeep, path, "objects and arrays are nested more than %d deep", MaxDepth)
	}
	switch d {
	case '{':
		return w.object(t, path, depth+1)
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; ; i++ {
			p := path + "[" + strconv.Itoa(i) + "]"
			start := w.dec.InputOffset()
			tok, err := w.token(p)
			if err != nil {
				return err
			}
			if tok == json.Delim(']') {
				return nil
			}
			if err := w.value(tok, start, elem, p, depth+1); err != nil {
				return err
			}
		}
	}
	return errorf(CodeSyntax, path, "unexpected %q", d.String())
}

// object checks the members of an object whose '{' has been read.
func (w *walker) object(t reflect.Type, path string, depth int) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = structFields(t)
		case reflect.Map:
			elem = t.Elem()
		}
	}
	seen := map[string]string{} // folded key -> key
	for {
		tok, err := w.token(path)
		if err != nil {
			return err
		}
		if tok == json.Delim('}') {
			return nil
		}
		key, ok := tok.(string)
		if !ok {
			return errorf(CodeSyntax, path, "object key is not a string")
		}
		p := memberPath(path, key)
		fk := foldKey(key)
		if prev, dup := seen[fk]; dup {
			if prev == key {
				return errorf(CodeDuplicateKey, p, "key %s appears twice in the same object; send each key once", quote(key))
			}
			return errorf(CodeCaseVariantKey, p, "keys %s and %s differ only in letter case; send one key, spelled exactly", quote(prev), quote(key))
		}
		seen[fk] = key
		vt := elem
		if fields != nil {
			ft, ok := fields[key]
			if !ok {
				if want := foldMatch(fields, key); want != "" {
					return errorf(CodeUnknownField, p, "unknown field %s; did you mean %s? field names are case-sensitive", quote(key), quote(want))
				}
				return errorf(CodeUnknownField, p, "unknown field %s", quote(key))
			}
			vt = ft
		}
		start := w.dec.InputOffset()
		vtok, err := w.token(p)
		if err != nil {
			return err
		}
		if err := w.value(vtok, start, vt, p, depth); err != nil {
			return err
		}
	}
}

// preUnmarshal runs the UnmarshalJSON method of a fresh value of type t on
// raw, so that its error is reported with the path of the value.
func (w *walker) preUnmarshal(t reflect.Type, raw []byte, path string) error {
	raw = bytes.TrimLeft(raw, " \t\r\n:,")
	if bytes.Equal(raw, []byte("null")) {
		return nil // json.Unmarshal has its own rules for null
	}
	u, ok := reflect.New(t).Interface().(json.Unmarshaler)
	if !ok {
		return nil
	}
	if err := u.UnmarshalJSON(raw); err != nil {
		return errorf(CodeType, path, "%s", asciiSafe(clip(err.Error())))
	}
	return nil
}

func firstNonSpace(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// indirectType strips pointers; nil stays nil.
func indirectType(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// opaque reports whether values of t decode themselves or take any JSON.
func opaque(t reflect.Type) bool {
	if t.Kind() == reflect.Interface {
		return true
	}
	pt := reflect.PointerTo(t)
	return t.Implements(unmarshalerType) || pt.Implements(unmarshalerType) ||
		t.Implements(textUnmarshType) || pt.Implements(textUnmarshType)
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// structFields returns the JSON names of t's fields, with the type of each,
// following encoding/json's rules for tags and embedded structs.
func structFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	type cand struct {
		typ    reflect.Type
		depth  int
		tagged bool
		n      int // candidates with this name at this depth and taggedness
	}
	best := map[string]*cand{}
	var visit func(t reflect.Type, depth int, visited map[reflect.Type]bool)
	visit = func(t reflect.Type, depth int, visited map[reflect.Type]bool) {
		if visited[t] {
			return
		}
		visited[t] = true
		defer delete(visited, t)
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if !validTag(name) {
				name = ""
			}
			ft := f.Type
			if f.Anonymous {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if !f.IsExported() && et.Kind() != reflect.Struct {
					continue
				}
				if name == "" && et.Kind() == reflect.Struct {
					visit(et, depth+1, visited)
					continue
				}
			} else if !f.IsExported() {
				continue
			}
			tagged := name != ""
			if name == "" {
				name = f.Name
			}
			c := best[name]
			switch {
			case c == nil || depth < c.depth || (depth == c.depth && tagged && !c.tagged):
				best[name] = &cand{typ: ft, depth: depth, tagged: tagged, n: 1}
			case depth == c.depth && tagged == c.tagged:
				c.n++
			}
		}
	}
	visit(t, 0, map[reflect.Type]bool{})
	m := make(map[string]reflect.Type, len(best))
	for name, c := range best {
		if c.n == 1 { // encoding/json ignores ambiguous fields
			m[name] = c.typ
		}
	}
	fieldCache.Store(t, m)
	return m
}

// validTag mirrors encoding/json's isValidTag.
func validTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}

// foldMatch returns the field name equal to key under case folding, or "".
func foldMatch(fields map[string]reflect.Type, key string) string {
	for name := range fields {
		if strings.EqualFold(name, key) {
			return name
		}
	}
	return ""
}

// foldKey maps s to a canonical form such that foldKey(a) == foldKey(b)
// exactly when strings.EqualFold(a, b) (for valid UTF-8): every rune is
// replaced by the smallest rune of its simple case-folding orbit.
func foldKey(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || c == 'k' || c == 'K' || c == 's' || c == 'S' {
			// k and s fold with non-ASCII runes (Kelvin sign, long s).
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(m)
	}
	return b.String()
}

// memberPath appends key to path, as ".key" for simple keys and
// `["key"]` (Go-quoted) otherwise.
func memberPath(path, key string) string {
	simple := key != "" && len(key) <= 64
	for i := 0; i < len(key) && simple; i++ {
		c := key[i]
		simple = c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	if simple {
		return path + "." + key
	}
	return path + "[" + quote(key) + "]"
}

// quote quotes s for a message as ASCII (so that no control, bidi or
// look-alike character reaches a log or terminal), shortening long strings.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.QuoteToASCII(s[:cut]) + "…"
	}
	return strconv.QuoteToASCII(s)
}

func invalidUTF8Offset(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// badSurrogate scans the strings of syntactically valid JSON for \u escapes
// that encode a lone or misordered UTF-16 surrogate, which encoding/json
// silently turns into U+FFFD. It returns the offset of the first bad escape
// and false, or -1 and true.
func badSurrogate(b []byte) (int, bool) {
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !inString {
			if c == '"' {
				inString = true
			}
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 < len(b) && b[i+1] == 'u' {
				r, ok := hex4(b, i+2)
				if !ok {
					return i, false
				}
				switch {
				case r >= 0xd800 && r < 0xdc00:
					if i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
						if r2, ok := hex4(b, i+8); ok && r2 >= 0xdc00 && r2 < 0xe000 {
							i += 11
							continue
						}
					}
					return i, false
				case r >= 0xdc00 && r < 0xe000:
					return i, false
				}
				i += 5
			} else {
				i++
			}
		}
	}
	return -1, true
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
