package tools

import (
	"context"

	"github.com/mgx-ai/mgx/agentd/internal/web"
)

type webSearchArgs struct {
	Query string `json:"query"`
	Count int    `json:"count"`
}

type fetchURLArgs struct {
	URL    string `json:"url"`
	Offset int    `json:"offset"`
}

var webSpecs = []*Spec{
	define(Spec{Name: WebSearch,
		Description: "Search the web. Returns numbered results, each with its title, URL and a snippet; read a result in full " +
			"with fetch_url, and cite the URLs you use. count is how many results (default and maximum set by the deployment).",
		Schema: `{"type":"object","properties":{"query":{"type":"string","minLength":1,"maxLength":400},"count":{"type":"integer","minimum":1,"maximum":20}},"required":["query"],"additionalProperties":false}`},
		webSearch),
	define(Spec{Name: FetchURL,
		Description: "Fetch a public web page (or text, JSON, Markdown) and read it as text: the main content with its links " +
			"numbered as citations. Long pages come in parts: the answer says which offset to pass to read on. Private, " +
			"loopback and cloud-metadata addresses are refused.",
		Schema: `{"type":"object","properties":{"url":{"type":"string","minLength":1,"maxLength":4096},"offset":{"type":"integer","minimum":0}},"required":["url"],"additionalProperties":false}`},
		fetchURL),
}

func webSearch(ctx context.Context, x *Executor, _ *Call, a *webSearchArgs) (Result, error) {
	r, err := x.opts.Searcher.Search(ctx, a.Query, a.Count)
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		return fail("web_search failed: %v", err), nil
	}
	return Result{Output: r.Report()}, nil
}

func fetchURL(ctx context.Context, x *Executor, _ *Call, a *fetchURLArgs) (Result, error) {
	p, err := x.opts.Fetcher.Fetch(ctx, web.FetchRequest{URL: a.URL, Offset: a.Offset})
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		return fail("fetch_url: %v", err), nil
	}
	return Result{Output: p.Report(), IsError: p.Status >= 400}, nil
}
