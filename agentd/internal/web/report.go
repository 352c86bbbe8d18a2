package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Report renders the page as the observation a model reads: where it came from, the text window,
// how to read on, and the links cited in the window.
func (p *Page) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Fetched %s (HTTP %d %s, %s%s)\n", p.FinalURL, p.Status, http.StatusText(p.Status), p.ContentType, sizeOf(int64(p.Bytes)))
	if p.FinalURL != p.URL {
		fmt.Fprintf(&b, "Redirected from %s\n", p.URL)
	}
	if p.Title != "" {
		fmt.Fprintf(&b, "Title: %s\n", p.Title)
	}
	if p.BodyTruncated {
		fmt.Fprintf(&b, "Note: the body was cut at %s, so the text ends early.\n", strings.TrimPrefix(sizeOf(int64(p.Bytes)), ", "))
	}
	b.WriteString("\n")
	end := p.Offset + len([]rune(p.Text))
	switch {
	case p.TotalChars == 0:
		b.WriteString("(the page has no readable text)\n")
	case p.Text == "" && p.Offset >= p.TotalChars:
		fmt.Fprintf(&b, "(offset %d is past the end: the text has %d characters)\n", p.Offset, p.TotalChars)
	default:
		b.WriteString(p.Text)
		if !strings.HasSuffix(p.Text, "\n") {
			b.WriteString("\n")
		}
	}
	if p.Text != "" && (p.Offset > 0 || end < p.TotalChars) {
		fmt.Fprintf(&b, "\nCharacters %d–%d of %d", p.Offset, end, p.TotalChars)
		if end < p.TotalChars {
			fmt.Fprintf(&b, ": call fetch_url again with offset %d to read on.", end)
		} else {
			b.WriteString(" (the end).")
		}
		b.WriteString("\n")
	}
	var cited []string
	for i, l := range p.Links {
		marker := "[" + strconv.Itoa(i+1) + "]"
		if strings.Contains(p.Text, marker) {
			cited = append(cited, marker+" "+l.URL)
		}
	}
	if len(cited) > 0 {
		b.WriteString("\nLinks:\n" + strings.Join(cited, "\n") + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}
