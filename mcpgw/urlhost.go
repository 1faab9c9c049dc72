package mcpgw

import (
	"errors"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/net/idna"
)

// The URL facts of an argument string. An MCP server written in Node,
// Python or Go hands a string argument to its own URL parser, and that
// parser — not a strict reading — decides which host is reached: Node's
// `new URL(" https://evil.example/x")` strips the space and fetches
// evil.example. So writ reads URLs as the WHATWG URL Standard
// (url.spec.whatwg.org) does, which Node, Deno, browsers and Python's
// common fetchers follow or exceed: leading and trailing C0 controls and
// spaces stripped, tabs and newlines removed, the scheme case-folded,
// backslashes read as slashes and slashes optional after a special
// scheme, userinfo dropped, the host percent-decoded and mapped through
// IDNA (UTS #46, non-transitional), and a host that ends in a number read
// as IPv4 in any notation (decimal `2130706433`, octal `0177.0.0.1`, hex
// `0x7f.1`, short forms) and written dotted-decimal; IPv6 literals are
// written compressed, without brackets.
//
// Two readings of one string give host facts:
//
//   - the whole string, as a URL parser reads it (wholeURL);
//   - every URL inside it, in free text (embeddedURLs): each place a
//     scheme and ":" stand, read up to the next space (Unicode), so
//     "see https://evil.example/x" names evil.example.
//
// A candidate that claims to be a URL with an authority but whose host
// cannot be parsed is the fact "(unparseable)": a host no scope lists.

// unparseable is the host fact of a URL whose host cannot be read.
const unparseable = "(unparseable)"

// maxAuthority bounds the authority (userinfo, host, port) writ reads.
const maxAuthority = 4096

// specialSchemes are the WHATWG special schemes (the value is unused).
var specialSchemes = map[string]bool{"ftp": true, "file": true, "http": true, "https": true, "ws": true, "wss": true}

// urlFact is what one URL reading of a string found.
type urlFact struct {
	scheme  string // lowercase
	host    string // the host fact; "" for none (a file URL on this machine, an opaque URL)
	rawPath string // file URLs only: what follows the host
	isFile  bool
	hasHost bool // the URL has an authority (host may be unparseable)
}

// filePath returns the path of a file URL, percent-decoded, backslashes
// as slashes, absolute.
func (f urlFact) filePath() string {
	p := f.rawPath
	if k := strings.IndexAny(p, "?#"); k >= 0 {
		p = p[:k]
	}
	p = percentDecode(strings.ReplaceAll(p, "\\", "/"))
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

// isC0OrSpace reports whether c is stripped from both ends of a URL.
func isC0OrSpace(c byte) bool { return c <= 0x20 }

// wholeURL reads s as a WHATWG URL parser given s alone (no base URL)
// would. ok is false when s does not start with a scheme.
func wholeURL(s string) (urlFact, bool) {
	s = strings.TrimFunc(s, func(r rune) bool { return r <= 0x20 })
	s = removeTabNewline(s)
	i := strings.IndexByte(s, ':')
	if i <= 0 || !isScheme(s[:i]) {
		return urlFact{}, false
	}
	return afterScheme(strings.ToLower(s[:i]), s[i+1:]), true
}

// embeddedURLs returns the URL readings of every scheme inside s, as free
// text: a candidate starts where a run of scheme characters ending in a
// scheme stands before ":", and ends at the next space (ASCII or
// Unicode; other control characters stay in the word, as a parser given
// the word keeps them). A run that ends in a special scheme ("xhttps:",
// "1http:") is read as that scheme too: what a lenient reader, or a later
// cut, finds.
// Opaque candidates (no authority, as in "note: x") give nothing. At most
// maxCandidates candidates are read; ok is false past that.
func embeddedURLs(s string, maxCandidates int) (out []urlFact, ok bool) {
	n := 0
	for _, tok := range strings.FieldsFunc(s, unicode.IsSpace) {
		// Each word as a parser given the word alone reads it: C0
		// controls at its ends stripped.
		tok = strings.TrimFunc(tok, func(r rune) bool { return r <= 0x20 })
		prev := 0 // scheme runs never cross a ":"
		for i := strings.IndexByte(tok, ':'); i >= 0; i = nextColon(tok, i) {
			j := i
			for j > prev && isSchemeChar(tok[j-1]) {
				j--
			}
			prev = i + 1
			if j == i {
				continue
			}
			if n++; n > maxCandidates {
				return nil, false
			}
			run := strings.ToLower(tok[j:i])
			rest := tok[i+1:]
			if isScheme(run) {
				if f := afterScheme(run, rest); f.hasHost || specialSchemes[run] {
					out = append(out, f)
				}
			}
			for _, sch := range specialOrder {
				if strings.HasSuffix(run, sch) {
					if sch != run {
						out = append(out, afterScheme(sch, rest))
					}
					break
				}
			}
		}
	}
	return out, true
}

func nextColon(s string, i int) int {
	if k := strings.IndexByte(s[i+1:], ':'); k >= 0 {
		return i + 1 + k
	}
	return -1
}

// specialOrder lists the special schemes longest first, so a run ending
// in "https" is https, not "s"-less http.
var specialOrder = []string{"https", "file", "http", "wss", "ftp", "ws"}

func isSchemeChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}

func isScheme(s string) bool {
	if s == "" || !('a' <= s[0] && s[0] <= 'z' || 'A' <= s[0] && s[0] <= 'Z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isSchemeChar(s[i]) {
			return false
		}
	}
	return true
}

func removeTabNewline(s string) string {
	if !strings.ContainsAny(s, "\t\n\r") {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
}

// afterScheme reads the rest of a URL after "scheme:".
func afterScheme(scheme, rest string) urlFact {
	f := urlFact{scheme: scheme}
	special := specialSchemes[scheme]
	isSlash := func(c byte) bool { return c == '/' || (special && c == '\\') }
	switch {
	case scheme == "file":
		f.isFile = true
		// file: [slash [slash host]] path
		if len(rest) > 0 && isSlash(rest[0]) {
			rest = rest[1:]
			if len(rest) > 0 && isSlash(rest[0]) {
				rest = rest[1:]
				end := len(rest)
				for k := 0; k < len(rest); k++ {
					if c := rest[k]; c == '/' || c == '\\' || c == '?' || c == '#' {
						end = k
						break
					}
					if k == maxAuthority {
						f.hasHost, f.host = true, unparseable
						return f
					}
				}
				switch h := rest[:end]; {
				case windowsDrive(h):
					f.rawPath = rest
				case h != "":
					f.hasHost = true
					host, err := parseHost(h, true)
					switch {
					case err != nil:
						f.host = unparseable
					case host != "localhost":
						f.host = host
					}
					f.rawPath = rest[end:]
				default:
					f.rawPath = rest
				}
				return f
			}
		}
		f.rawPath = rest
		return f
	case special:
		// Any number of slashes or backslashes, even none, then the
		// authority.
		rest = strings.TrimLeft(rest, "/\\")
	default:
		if !strings.HasPrefix(rest, "//") {
			return f // an opaque URL (mailto:, urn:): no host
		}
		rest = rest[2:]
	}
	end := len(rest)
	for k := 0; k < len(rest); k++ {
		if c := rest[k]; c == '/' || c == '?' || c == '#' || (special && c == '\\') {
			end = k
			break
		}
		if k == maxAuthority {
			// Longer than any host with its userinfo and port: a host
			// nobody scoped, and a bound on the work per candidate.
			f.hasHost, f.host = true, unparseable
			return f
		}
	}
	auth := rest[:end]
	if k := strings.LastIndexByte(auth, '@'); k >= 0 {
		auth = auth[k+1:]
	}
	host := auth
	// The port: after the last ":" outside brackets.
	inBracket := false
	for k := 0; k < len(auth); k++ {
		switch auth[k] {
		case '[':
			inBracket = true
		case ']':
			inBracket = false
		case ':':
			if !inBracket {
				host = auth[:k]
				k = len(auth)
			}
		}
	}
	f.hasHost = true
	if host == "" && !special {
		f.hasHost = false
		return f
	}
	h, err := parseHost(host, special)
	if err != nil || h == "" {
		f.host = unparseable
		return f
	}
	f.host = h
	return f
}

// windowsDrive reports whether s is a Windows drive letter ("C:", "c|").
func windowsDrive(s string) bool {
	return len(s) == 2 && ('a' <= s[0] && s[0] <= 'z' || 'A' <= s[0] && s[0] <= 'Z') && (s[1] == ':' || s[1] == '|')
}

var errHost = errors.New("invalid host")

// lookup is UTS #46 ToASCII as the WHATWG "domain to ASCII" runs it
// (beStrict false: non-transitional, CheckHyphens false, UseSTD3ASCIIRules
// false, no DNS length check), without the Bidi and joiner checks, which
// only refuse names (Node's parser skips them too): a name refused by one
// parser and read by another must still be a fact here.
var lookup = idna.New(whatwgIDNA...)

// whatwgIDNA are the options of lookup and lenient.
var whatwgIDNA = []idna.Option{
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.CheckHyphens(false),
	idna.CheckJoiners(false),
	idna.StrictDomainName(false),
	idna.VerifyDNSLength(false),
}

// parseHost is the WHATWG host parser: for special schemes a domain or
// an IP address, lowercase, IPv4 dotted-decimal and IPv6 compressed (no
// brackets); for other schemes the opaque host, lowercased.
func parseHost(s string, special bool) (string, error) {
	if strings.HasPrefix(s, "[") {
		if !strings.HasSuffix(s, "]") {
			return "", errHost
		}
		return parseIPv6(s[1 : len(s)-1])
	}
	if !special {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			c := s[i]
			if forbiddenHost(c) {
				return "", errHost
			}
			if c < 0x20 || c >= 0x7f {
				b.WriteString("%" + strings.ToUpper(strconv.FormatUint(uint64(c)|0x100, 16)[1:]))
				continue
			}
			b.WriteByte(c)
		}
		return strings.ToLower(b.String()), nil
	}
	domain := percentDecode(s)
	ascii, err := toASCII(domain)
	if err != nil {
		return "", errHost
	}
	if ascii == "" {
		return "", errHost
	}
	for i := 0; i < len(ascii); i++ {
		if c := ascii[i]; forbiddenHost(c) || c <= 0x20 || c == '%' || c == 0x7f {
			return "", errHost
		}
	}
	if endsInNumber(ascii) {
		return parseIPv4(ascii)
	}
	return ascii, nil
}

// lenient maps and encodes as lookup does but validates no label: where
// lookup refuses a name another parser may still read.
var lenient = idna.New(append(whatwgIDNA[:len(whatwgIDNA):len(whatwgIDNA)], idna.ValidateLabels(false))...)

// toASCII maps a domain to ASCII. An ASCII name only loses its case (the
// UTS #46 checks of a name, such as a bad "xn--" label, only refuse it,
// and parsers differ in which they run); other names go through lookup,
// else lenient.
func toASCII(domain string) (string, error) {
	for i := 0; i < len(domain); i++ {
		if domain[i] >= 0x80 {
			a, err := lookup.ToASCII(domain)
			if err != nil {
				a, err = lenient.ToASCII(domain)
			}
			return a, err
		}
	}
	return strings.ToLower(domain), nil
}

// forbiddenHost reports the WHATWG forbidden host code points.
func forbiddenHost(c byte) bool {
	switch c {
	case 0, '\t', '\n', '\r', ' ', '#', '/', ':', '<', '>', '?', '@', '[', '\\', ']', '^', '|':
		return true
	}
	return false
}

// percentDecode decodes %XX sequences; others stay as they are.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b = append(b, byte(v))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// endsInNumber is the WHATWG "ends in a number" checker.
func endsInNumber(s string) bool {
	parts := strings.Split(s, ".")
	if parts[len(parts)-1] == "" {
		if len(parts) == 1 {
			return false
		}
		parts = parts[:len(parts)-1]
	}
	last := parts[len(parts)-1]
	if last != "" && strings.Trim(last, "0123456789") == "" {
		return true
	}
	_, err := ipv4Number(last)
	return err == nil
}

// ipv4Number parses one part of an IPv4 address: decimal, octal with a
// leading 0, hex with 0x.
func ipv4Number(s string) (uint64, error) {
	if s == "" {
		return 0, errHost
	}
	base := 10
	switch {
	case len(s) >= 2 && (s[:2] == "0x" || s[:2] == "0X"):
		s, base = s[2:], 16
	case len(s) >= 2 && s[0] == '0':
		s, base = s[1:], 8
	}
	if s == "" {
		return 0, nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := base == 10 && '0' <= c && c <= '9' || base == 8 && '0' <= c && c <= '7' || base == 16 && isHex(c)
		if !ok {
			return 0, errHost
		}
	}
	// Any number of leading zeros; values past 2^32 fail below.
	t := strings.TrimLeft(s, "0")
	if len(t) > 16 {
		return 1 << 40, nil
	}
	if t == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(t, base, 64)
	if err != nil {
		return 1 << 40, nil
	}
	return v, nil
}

// parseIPv4 is the WHATWG IPv4 parser, answering dotted-decimal.
func parseIPv4(s string) (string, error) {
	parts := strings.Split(s, ".")
	if parts[len(parts)-1] == "" && len(parts) > 1 {
		parts = parts[:len(parts)-1]
	}
	if len(parts) > 4 {
		return "", errHost
	}
	nums := make([]uint64, len(parts))
	for i, p := range parts {
		n, err := ipv4Number(p)
		if err != nil {
			return "", errHost
		}
		nums[i] = n
	}
	for _, n := range nums[:len(nums)-1] {
		if n > 255 {
			return "", errHost
		}
	}
	last := nums[len(nums)-1]
	if last >= 1<<(8*(5-len(nums))) {
		return "", errHost
	}
	v := last
	for i, n := range nums[:len(nums)-1] {
		v += n << (8 * (3 - i))
	}
	return strconv.Itoa(int(v>>24)) + "." + strconv.Itoa(int(v>>16&255)) + "." + strconv.Itoa(int(v>>8&255)) + "." + strconv.Itoa(int(v&255)), nil
}

// parseIPv6 is the WHATWG IPv6 parser, answering the compressed form.
func parseIPv6(s string) (string, error) {
	var a [8]uint16
	piece, compress := 0, -1
	i := 0
	if strings.HasPrefix(s, ":") {
		if !strings.HasPrefix(s, "::") {
			return "", errHost
		}
		i += 2
		piece++
		compress = piece
	}
	for i < len(s) {
		if piece == 8 {
			return "", errHost
		}
		if s[i] == ':' {
			if compress >= 0 {
				return "", errHost
			}
			i++
			piece++
			compress = piece
			continue
		}
		value, length := 0, 0
		for length < 4 && i < len(s) && isHex(s[i]) {
			d, _ := strconv.ParseUint(s[i:i+1], 16, 8)
			value = value*16 + int(d)
			i++
			length++
		}
		if i < len(s) && s[i] == '.' {
			if length == 0 {
				return "", errHost
			}
			i -= length
			if piece > 6 {
				return "", errHost
			}
			seen := 0
			for i < len(s) {
				v := -1
				if seen > 0 {
					if s[i] == '.' && seen < 4 {
						i++
					} else {
						return "", errHost
					}
				}
				if i >= len(s) || s[i] < '0' || s[i] > '9' {
					return "", errHost
				}
				for i < len(s) && '0' <= s[i] && s[i] <= '9' {
					n := int(s[i] - '0')
					switch {
					case v == -1:
						v = n
					case v == 0:
						return "", errHost
					default:
						v = v*10 + n
					}
					if v > 255 {
						return "", errHost
					}
					i++
				}
				a[piece] = a[piece]*0x100 + uint16(v)
				seen++
				if seen == 2 || seen == 4 {
					piece++
				}
			}
			if seen != 4 {
				return "", errHost
			}
			break
		}
		if i < len(s) && s[i] == ':' {
			i++
			if i >= len(s) {
				return "", errHost
			}
		} else if i < len(s) {
			return "", errHost
		}
		a[piece] = uint16(value)
		piece++
	}
	if compress >= 0 {
		swaps := piece - compress
		piece = 7
		for piece != 0 && swaps > 0 {
			a[piece], a[compress+swaps-1] = a[compress+swaps-1], a[piece]
			piece--
			swaps--
		}
	} else if piece != 8 {
		return "", errHost
	}
	// Compress the first longest run of two or more zero pieces.
	best, bestLen := -1, 1
	for k := 0; k < 8; {
		if a[k] != 0 {
			k++
			continue
		}
		n := k
		for n < 8 && a[n] == 0 {
			n++
		}
		if n-k > bestLen {
			best, bestLen = k, n-k
		}
		k = n
	}
	var b strings.Builder
	ignore0 := false
	for k := 0; k < 8; k++ {
		if ignore0 && a[k] == 0 {
			continue
		}
		ignore0 = false
		if k == best {
			if k == 0 {
				b.WriteString("::")
			} else {
				b.WriteString(":")
			}
			ignore0 = true
			continue
		}
		b.WriteString(strconv.FormatUint(uint64(a[k]), 16))
		if k != 7 {
			b.WriteString(":")
		}
	}
	return b.String(), nil
}
