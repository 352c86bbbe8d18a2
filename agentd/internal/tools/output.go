package tools

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// capture keeps the head and the tail of a stream too long to keep whole: the head shows how a
// command started, the tail holds how it ended — where the error usually is.
type capture struct {
	headMax, tailMax int
	head             []byte
	tail             []byte // the last tailMax bytes after the head, as a sliding window
	total            int64
}

func newCapture(head, tail int) *capture { return &capture{headMax: head, tailMax: tail} }

func (c *capture) Write(p []byte) {
	c.total += int64(len(p))
	if room := c.headMax - len(c.head); room > 0 {
		n := min(room, len(p))
		c.head = append(c.head, p[:n]...)
		p = p[n:]
	}
	if len(p) == 0 {
		return
	}
	c.tail = append(c.tail, p...)
	if over := len(c.tail) - c.tailMax; over > 0 {
		// Compact rarely: keep up to twice the window before copying down.
		if len(c.tail) > 2*c.tailMax {
			c.tail = append(c.tail[:0], c.tail[over:]...)
		}
	}
}

// cut is how many bytes between the head and the tail were dropped.
func (c *capture) cut() int64 {
	return c.total - int64(len(c.head)) - int64(min(len(c.tail), c.tailMax))
}

// String renders the kept text: whole when nothing was cut, else head, a marker saying how much was
// cut, and the tail.
func (c *capture) String() string {
	tail := c.tail
	if len(tail) > c.tailMax {
		tail = tail[len(tail)-c.tailMax:]
	}
	if c.cut() <= 0 {
		return toText(append(append([]byte(nil), c.head...), tail...))
	}
	head := trimRuneEnd(c.head)
	tail = trimRuneStart(tail)
	return fmt.Sprintf("%s\n[… %d bytes cut from the middle …]\n%s", toText(head), c.total-int64(len(head))-int64(len(tail)), toText(tail))
}

// headTail shortens s to about head+tail bytes the same way.
func headTail(s string, head, tail int) string {
	c := newCapture(head, tail)
	c.Write([]byte(s))
	return c.String()
}

// trimRuneEnd drops a character cut at the end; trimRuneStart one cut at the start.
func trimRuneEnd(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

func trimRuneStart(b []byte) []byte {
	for i := 0; i < len(b) && i < utf8.UTFMax; i++ {
		if utf8.RuneStart(b[i]) {
			return b[i:]
		}
	}
	return b
}

// toText is b as valid UTF-8 (a model and an event carry text).
func toText(b []byte) string { return strings.ToValidUTF8(string(b), "\uFFFD") }

// size renders a byte count the way people read it.
func size(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1024*1024:
		return fmt.Sprintf("%.1f KB", float64(n)/1024)
	default:
		return fmt.Sprintf("%.1f MB", float64(n)/(1024*1024))
	}
}

// plural renders "1 line", "3 lines", "2 matches", "4 directories".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	switch {
	case strings.HasSuffix(word, "ch"), strings.HasSuffix(word, "sh"), strings.HasSuffix(word, "s"), strings.HasSuffix(word, "x"):
		word += "es"
	case strings.HasSuffix(word, "y") && !strings.ContainsAny(word[len(word)-2:len(word)-1], "aeiou"):
		word = word[:len(word)-1] + "ies"
	default:
		word += "s"
	}
	return fmt.Sprintf("%d %s", n, word)
}
