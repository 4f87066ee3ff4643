package agentmcp

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
)

// The text formats of the MCP filesystem server, which is written in
// JavaScript: sizes, dates, padding and sorting as Node.js renders them.

// formatSize renders a byte count like the filesystem server's formatSize:
// "0 B", "18 B", "1.50 KB", "3.00 MB", up to TB.
func formatSize(n int64) string {
	units := []string{"B", "KB", "MB", "GB", "TB"}
	if n <= 0 {
		return "0 B"
	}
	i := 0
	for v := n; v >= 1024 && i < len(units)-1; v /= 1024 {
		i++
	}
	if i == 0 {
		return strconv.FormatInt(n, 10) + " B"
	}
	div := float64(int64(1) << (10 * i))
	return toFixed2(float64(n)/div) + " " + units[i]
}

// toFixed2 is JavaScript's Number.prototype.toFixed(2): the exact value of
// the double rounded to two decimals, halves away from zero (Go's
// formatting rounds halves to even, so 1.125 would give 1.12, not 1.13).
func toFixed2(v float64) string {
	s := strconv.FormatFloat(v, 'f', 60, 64) // exact for these values
	dot := strings.IndexByte(s, '.')
	intPart, frac := s[:dot], s[dot+1:]
	cents, _ := strconv.ParseInt(intPart+frac[:2], 10, 64)
	if frac[2] >= '5' {
		cents++
	}
	c := strconv.FormatInt(cents, 10)
	for len(c) < 3 {
		c = "0" + c
	}
	return c[:len(c)-2] + "." + c[len(c)-2:]
}

// formatCount renders n with en-US thousands separators ("4,512"), as
// Number.prototype.toLocaleString("en-US").
func formatCount(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var sb strings.Builder
	if neg {
		sb.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			sb.WriteByte(',')
		}
		sb.WriteRune(c)
	}
	return sb.String()
}

// jsDate renders t as JavaScript's Date.prototype.toString in the local
// time zone: "Mon Nov 23 2026 09:44:20 GMT+0000 (Coordinated Universal
// Time)". JavaScript names the zone in full from the ICU database, which Go
// does not have; UTC is spelled out and other zones show their abbreviation.
func jsDate(t time.Time) string {
	t = t.Local()
	name, _ := t.Zone()
	if name == "UTC" || name == "" {
		name = "Coordinated Universal Time"
	}
	return t.Format("Mon Jan 02 2006 15:04:05 GMT-0700") + " (" + name + ")"
}

// utf16Len is the length of s as JavaScript counts it (UTF-16 code units).
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// padEnd and padStart are String.prototype.padEnd/padStart with spaces.
func padEnd(s string, width int) string {
	return s + strings.Repeat(" ", max(0, width-utf16Len(s)))
}

func padStart(s string, width int) string {
	return strings.Repeat(" ", max(0, width-utf16Len(s))) + s
}

// localeCompare approximates String.prototype.localeCompare in Node.js's
// default (ICU root / en-US) collation, which the filesystem server sorts
// names with: punctuation before digits before letters, letters compared
// without case and accents first, then accents, then lower case before
// upper case ("a" < "A" < "b"). It returns -1, 0 or +1.
func localeCompare(a, b string) int {
	ka, kb := collationKey(a), collationKey(b)
	for level := range 3 {
		for i := 0; i < len(ka) && i < len(kb); i++ {
			if x, y := ka[i][level], kb[i][level]; x != y {
				if x < y {
					return -1
				}
				return 1
			}
		}
		if len(ka) != len(kb) {
			if len(ka) < len(kb) {
				return -1
			}
			return 1
		}
	}
	return 0
}

// asciiOrder is the order Node.js's collator gives the printable ASCII
// characters (measured); letters are listed lower case first.
const asciiOrder = " _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789aAbBcCdDeEfFgGhHiIjJkKlLmMnNoOpPqQrRsStTuUvVwWxXyYzZ"

var asciiWeight = func() [128]int {
	var w [128]int
	n := 0
	for i := 0; i < len(asciiOrder); i++ {
		c := asciiOrder[i]
		if c >= 'A' && c <= 'Z' {
			w[c] = w[c+'a'-'A'] // same primary weight as its lower case
			continue
		}
		n++
		w[c] = n
	}
	return w
}()

// accentBase folds the accented Latin-1 letters to their base letter.
var accentBase = map[rune]rune{}

func init() {
	for base, accented := range map[rune]string{
		'a': "àáâãäå", 'c': "ç", 'e': "èéêë", 'i': "ìíîï", 'n': "ñ",
		'o': "òóôõöø", 'u': "ùúûü", 'y': "ýÿ",
	} {
		for _, r := range accented {
			accentBase[r] = base
		}
	}
}

// collationKey returns, per character, its primary (base letter), secondary
// (accent) and tertiary (case) weights.
func collationKey(s string) [][3]int {
	key := make([][3]int, 0, len(s))
	for _, r := range s {
		upper := 0
		if unicode.IsUpper(r) {
			upper = 1
		}
		lower := unicode.ToLower(r)
		accent := 0
		if base, ok := accentBase[lower]; ok {
			lower, accent = base, 1
		}
		primary := 1000 + int(lower)
		if lower < 128 {
			primary = asciiWeight[lower]
		}
		key = append(key, [3]int{primary, accent, upper})
	}
	return key
}
