package web

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"

	readability "codeberg.org/readeck/go-readability/v2"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

const (
	// maxLinks bounds the citations of one page; later links keep their text without a marker.
	maxLinks = 200
	// maxElements bounds readability's work on a huge document; beyond it the pruned body is used.
	maxElements = 30000
	// minArticleChars: a shorter "article" means readability missed the content (an index page, an
	// app shell), and the pruned body says more.
	minArticleChars = 250
)

type extracted struct {
	title string
	text  string
	links []Link
}

// extract finds an HTML page's readable content — the main article when there is one
// (readability), else the body without navigation, scripts and forms — and renders it as light
// Markdown with numbered link markers.
func extract(src string, pageURL *url.URL) extracted {
	doc, err := html.Parse(strings.NewReader(src))
	if err != nil {
		return extracted{text: src}
	}
	base := baseURL(doc, pageURL)
	out := extracted{title: documentTitle(doc)}

	parser := readability.NewParser()
	parser.MaxElemsToParse = maxElements
	var root *html.Node
	prune := false
	if article, err := parser.ParseDocument(doc, base); err == nil && article.Node != nil {
		if n := len(strings.TrimSpace(textContent(article.Node))); n >= minArticleChars {
			root = article.Node
			if t := strings.TrimSpace(article.Title()); t != "" && out.title == "" {
				out.title = t
			}
		}
	}
	if root == nil {
		root, prune = findElement(doc, atom.Body), true
		if root == nil {
			root = doc
		}
	}
	r := &renderer{base: base, prune: prune, index: map[string]int{}}
	r.node(root)
	out.text, out.links = r.result(), r.links
	return out
}

// renderer writes a DOM subtree as text. Whitespace in inline text collapses as a browser would;
// block elements start on new lines; pre keeps its text as it is.
type renderer struct {
	b     strings.Builder
	base  *url.URL
	prune bool
	links []Link
	index map[string]int

	// space is a collapsed whitespace run waiting for the next word.
	space bool
	pre   int
	quote int
	lists []listState
}

type listState struct {
	ordered bool
	n       int
}

// skipped are elements whose content is never readable text.
var skipped = map[atom.Atom]bool{
	atom.Script: true, atom.Style: true, atom.Noscript: true, atom.Template: true, atom.Svg: true,
	atom.Math: true, atom.Canvas: true, atom.Iframe: true, atom.Object: true, atom.Embed: true,
	atom.Head: true, atom.Select: true, atom.Button: true, atom.Input: true, atom.Textarea: true,
	atom.Audio: true, atom.Video: true, atom.Dialog: true,
}

// chrome is page furniture, dropped when the whole body is rendered (readability drops it itself).
var chrome = map[atom.Atom]bool{atom.Nav: true, atom.Footer: true, atom.Header: true, atom.Aside: true, atom.Form: true}

var blocks = map[atom.Atom]bool{
	atom.Div: true, atom.Section: true, atom.Article: true, atom.Main: true, atom.Figure: true,
	atom.Figcaption: true, atom.Address: true, atom.Details: true, atom.Summary: true, atom.Dl: true,
	atom.Dt: true, atom.Dd: true, atom.Table: true, atom.Thead: true, atom.Tbody: true, atom.Tfoot: true,
	atom.Caption: true, atom.Header: true, atom.Footer: true, atom.Nav: true, atom.Aside: true,
	atom.Form: true, atom.Fieldset: true, atom.Center: true, atom.Body: true, atom.Html: true,
}

func (r *renderer) node(n *html.Node) {
	switch n.Type {
	case html.TextNode:
		r.text(n.Data)
		return
	case html.DocumentNode:
		r.children(n)
		return
	case html.ElementNode:
	default:
		return
	}
	if skipped[n.DataAtom] || hidden(n) || r.prune && chrome[n.DataAtom] {
		return
	}
	switch a := n.DataAtom; a {
	case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
		r.paragraph()
		r.write(strings.Repeat("#", int(a.String()[1]-'0')) + " ")
		r.children(n)
		r.paragraph()
	case atom.P:
		r.paragraph()
		r.children(n)
		r.paragraph()
	case atom.Br:
		r.newline()
	case atom.Hr:
		r.paragraph()
		r.write("---")
		r.paragraph()
	case atom.Ul, atom.Ol, atom.Menu:
		r.newline()
		r.lists = append(r.lists, listState{ordered: a == atom.Ol})
		r.children(n)
		r.lists = r.lists[:len(r.lists)-1]
		r.newline()
	case atom.Li:
		r.newline()
		marker := "- "
		if len(r.lists) > 0 {
			l := &r.lists[len(r.lists)-1]
			l.n++
			if l.ordered {
				marker = strconv.Itoa(l.n) + ". "
			}
			r.write(strings.Repeat("  ", len(r.lists)-1))
		}
		r.write(marker)
		r.children(n)
		r.newline()
	case atom.Pre:
		r.paragraph()
		r.write("```")
		r.newline()
		r.pre++
		r.children(n)
		r.pre--
		r.newline()
		r.write("```")
		r.paragraph()
	case atom.Code:
		if r.pre > 0 {
			r.children(n)
			return
		}
		r.inline("`")
		r.children(n)
		r.b.WriteString("`")
	case atom.Blockquote:
		r.paragraph()
		r.quote++
		r.children(n)
		r.quote--
		r.paragraph()
	case atom.Tr:
		r.newline()
		first := true
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if c.Type != html.ElementNode || (c.DataAtom != atom.Td && c.DataAtom != atom.Th) {
				continue
			}
			if !first {
				r.write(" | ")
			}
			first = false
			r.children(c)
		}
		r.newline()
	case atom.A:
		r.anchor(n)
	case atom.Img:
		// Images say something only through their alt text, and only where they are the content
		// of a link (anchor handles that).
	default:
		if blocks[a] {
			r.newline()
			r.children(n)
			r.newline()
			return
		}
		r.children(n)
	}
}

func (r *renderer) children(n *html.Node) {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		r.node(c)
	}
}

func (r *renderer) anchor(n *html.Node) {
	start := r.b.Len()
	r.children(n)
	if strings.TrimSpace(r.b.String()[start:]) == "" {
		if alt := imageAlt(n); alt != "" {
			r.text(alt)
		}
	}
	target := r.resolve(attr(n, "href"))
	if target == "" {
		return
	}
	i, ok := r.index[target]
	if !ok {
		if len(r.links) >= maxLinks {
			return
		}
		text := strings.Join(strings.Fields(textContent(n)), " ")
		if text == "" {
			text = imageAlt(n)
		}
		r.links = append(r.links, Link{Text: text, URL: target})
		i = len(r.links)
		r.index[target] = i
	}
	r.b.WriteString(" [" + strconv.Itoa(i) + "]")
}

// resolve makes href absolute, or "" for links that lead nowhere worth citing (same-page
// fragments, javascript:, unparsable).
func (r *renderer) resolve(href string) string {
	href = strings.TrimSpace(href)
	if href == "" || strings.HasPrefix(href, "#") {
		return ""
	}
	u, err := url.Parse(href)
	if err != nil {
		return ""
	}
	if r.base != nil {
		u = r.base.ResolveReference(u)
	}
	switch u.Scheme {
	case "http", "https":
	case "mailto":
		return u.String()
	default:
		return ""
	}
	if r.base != nil && u.Fragment != "" {
		same := *u
		same.Fragment = ""
		page := *r.base
		page.Fragment = ""
		if same.String() == page.String() {
			return ""
		}
	}
	return u.String()
}

// text writes inline text: whitespace runs collapse to one space, except in pre.
func (r *renderer) text(s string) {
	if r.pre > 0 {
		r.b.WriteString(s)
		return
	}
	for i, word := range strings.Fields(s) {
		if i > 0 || startsWithSpace(s) {
			r.space = true
		}
		r.inline(word)
	}
	if endsWithSpace(s) {
		r.space = true
	}
}

// inline writes s after a pending space (none at the start of a line).
func (r *renderer) inline(s string) {
	if r.atLineStart() {
		r.prefix()
	} else if r.space {
		r.b.WriteByte(' ')
	}
	r.space = false
	r.b.WriteString(s)
}

// write writes block syntax (markers, fences) at the current position.
func (r *renderer) write(s string) {
	if r.atLineStart() {
		r.prefix()
	}
	r.space = false
	r.b.WriteString(s)
}

func (r *renderer) prefix() {
	if r.quote > 0 {
		r.b.WriteString(strings.Repeat("> ", r.quote))
	}
}

func (r *renderer) atLineStart() bool {
	s := r.b.String()
	return len(s) == 0 || s[len(s)-1] == '\n'
}

func (r *renderer) newline() {
	r.space = false
	if !r.atLineStart() {
		r.b.WriteByte('\n')
	}
}

func (r *renderer) paragraph() {
	r.newline()
	s := r.b.String()
	if len(s) > 0 && !strings.HasSuffix(s, "\n\n") {
		r.b.WriteByte('\n')
	}
}

var blankLines = regexp.MustCompile(`\n{3,}`)

func (r *renderer) result() string {
	lines := strings.Split(r.b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	return strings.TrimSpace(blankLines.ReplaceAllString(strings.Join(lines, "\n"), "\n\n"))
}

func startsWithSpace(s string) bool { return s != "" && strings.TrimLeft(s, " \t\n\r\f") != s }
func endsWithSpace(s string) bool   { return s != "" && strings.TrimRight(s, " \t\n\r\f") != s }

// hidden reports elements a browser would not show.
func hidden(n *html.Node) bool {
	if _, ok := attrOK(n, "hidden"); ok {
		return true
	}
	if attr(n, "aria-hidden") == "true" {
		return true
	}
	style := strings.ReplaceAll(strings.ToLower(attr(n, "style")), " ", "")
	return strings.Contains(style, "display:none") || strings.Contains(style, "visibility:hidden")
}

func attr(n *html.Node, key string) string {
	v, _ := attrOK(n, key)
	return v
}

func attrOK(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Namespace == "" && strings.EqualFold(a.Key, key) {
			return a.Val, true
		}
	}
	return "", false
}

func imageAlt(n *html.Node) string {
	if img := findElement(n, atom.Img); img != nil {
		return strings.TrimSpace(attr(img, "alt"))
	}
	return ""
}

func findElement(n *html.Node, a atom.Atom) *html.Node {
	if n.Type == html.ElementNode && n.DataAtom == a {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := findElement(c, a); f != nil {
			return f
		}
	}
	return nil
}

func textContent(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
			return
		}
		if n.Type == html.ElementNode && skipped[n.DataAtom] {
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

// documentTitle is the <title>, else og:title.
func documentTitle(doc *html.Node) string {
	if t := findElement(doc, atom.Title); t != nil {
		if s := strings.Join(strings.Fields(textContent(t)), " "); s != "" {
			return s
		}
	}
	var og string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if og != "" {
			return
		}
		if n.Type == html.ElementNode && n.DataAtom == atom.Meta && attr(n, "property") == "og:title" {
			og = strings.TrimSpace(attr(n, "content"))
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return og
}

// baseURL honours <base href>, against which relative links resolve.
func baseURL(doc *html.Node, pageURL *url.URL) *url.URL {
	if b := findElement(doc, atom.Base); b != nil {
		if href := attr(b, "href"); href != "" {
			if u, err := url.Parse(href); err == nil {
				if pageURL != nil {
					return pageURL.ResolveReference(u)
				}
				return u
			}
		}
	}
	return pageURL
}
