package llm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Price is what a model costs per million tokens, in USD. Cache reads and writes are billed at
// their own rates; zero means the input rate.
type Price struct {
	InputPerMTok      float64
	OutputPerMTok     float64
	CacheReadPerMTok  float64
	CacheWritePerMTok float64
}

// Cost returns the cost of u at price p.
func (p Price) Cost(u Usage) float64 {
	read, write := p.CacheReadPerMTok, p.CacheWritePerMTok
	if read == 0 {
		read = p.InputPerMTok
	}
	if write == 0 {
		write = p.InputPerMTok
	}
	plain := max(u.InputTokens-u.CacheReadTokens-u.CacheWriteTokens, 0)
	return (float64(plain)*p.InputPerMTok + float64(u.CacheReadTokens)*read +
		float64(u.CacheWriteTokens)*write + float64(u.OutputTokens)*p.OutputPerMTok) / 1e6
}

// listPrices are the providers' list prices (USD per million tokens, standard tier, short context)
// as published in late 2026. Anthropic's cache writes are the 5-minute rate (1.25× input), which is
// what agentd's cache breakpoints use; OpenAI and DeepSeek bill cache writes as plain input.
// AGENTD_LLM_PRICES corrects or extends them without a release.
var listPrices = map[string]Price{
	// OpenAI
	"gpt-3.5-turbo": {0.50, 1.50, 0, 0},
	"gpt-4":         {30, 60, 0, 0},
	"gpt-4-turbo":   {10, 30, 0, 0},
	"gpt-4o":        {2.50, 10, 1.25, 0},
	"gpt-4o-mini":   {0.15, 0.60, 0.075, 0},
	"chatgpt-4o":    {5, 15, 0, 0},
	"gpt-4.1":       {2, 8, 0.50, 0},
	"gpt-4.1-mini":  {0.40, 1.60, 0.10, 0},
	"gpt-4.1-nano":  {0.10, 0.40, 0.025, 0},
	"o1":            {15, 60, 7.50, 0},
	"o1-mini":       {1.10, 4.40, 0.55, 0},
	"o3":            {2, 8, 0.50, 0},
	"o3-mini":       {1.10, 4.40, 0.55, 0},
	"o4-mini":       {1.10, 4.40, 0.275, 0},
	"gpt-5":         {1.25, 10, 0.125, 0},
	"gpt-5-mini":    {0.25, 2, 0.025, 0},
	"gpt-5-nano":    {0.05, 0.40, 0.005, 0},
	"gpt-5.1":       {1.25, 10, 0.125, 0},
	"gpt-5.1-mini":  {0.25, 2, 0.025, 0},
	"gpt-5.2":       {1.75, 14, 0.175, 0},
	"gpt-5.4":       {2.50, 15, 0.25, 0},
	"gpt-5.4-mini":  {0.75, 4.50, 0.075, 0},
	"gpt-5.4-nano":  {0.20, 1.25, 0.02, 0},
	"gpt-5.4-pro":   {30, 180, 0, 0},
	"gpt-5.5":       {5, 30, 0.50, 0},
	"gpt-5.5-pro":   {30, 180, 0, 0},
	// Anthropic
	"claude-3-haiku":    {0.25, 1.25, 0.03, 0.30},
	"claude-3-opus":     {15, 75, 1.50, 18.75},
	"claude-3-5-haiku":  {0.80, 4, 0.08, 1},
	"claude-3-5-sonnet": {3, 15, 0.30, 3.75},
	"claude-3-7-sonnet": {3, 15, 0.30, 3.75},
	"claude-sonnet-4":   {3, 15, 0.30, 3.75}, // 4, 4.5, 4.6
	"claude-opus-4":     {15, 75, 1.50, 18.75},
	"claude-opus-4-1":   {15, 75, 1.50, 18.75},
	"claude-opus-4-5":   {5, 25, 0.50, 6.25},
	"claude-opus-4-6":   {5, 25, 0.50, 6.25},
	"claude-opus-4-7":   {5, 25, 0.50, 6.25},
	"claude-opus-4-8":   {5, 25, 0.50, 6.25},
	"claude-opus-5":     {5, 25, 0.50, 6.25},
	"claude-opus-5-5":   {4, 20, 0.40, 5},
	"claude-sonnet-5":   {2, 10, 0.20, 2.50}, // 5, 5.5
	"claude-haiku-4-5":  {1, 5, 0.10, 1.25},
	"claude-haiku-5-5":  {0.10, 0.50, 0.01, 0.125}, // prompts up to 100K tokens
	"claude-fable-5":    {10, 50, 1, 12.50},
	"claude-fable-5-1":  {10, 50, 0.25, 12.50},
	"claude-mythos-5":   {10, 50, 1, 12.50},
	"claude-mythos-5-1": {10, 50, 0.25, 12.50},
	// DeepSeek (V3.2 behind both names)
	"deepseek-chat":     {0.28, 0.42, 0.028, 0},
	"deepseek-reasoner": {0.28, 0.42, 0.028, 0},
}

// Pricing prices models: the list prices, corrected by the operator's overrides, and a fallback for
// the models neither knows.
type Pricing struct {
	table    map[string]Price
	fallback Price
}

// NewPricing returns the list prices with overrides applied; fallback prices unknown models (a
// zero fallback leaves them unpriced).
func NewPricing(overrides map[string]Price, fallback Price) Pricing {
	t := make(map[string]Price, len(listPrices)+len(overrides))
	for k, v := range listPrices {
		t[k] = v
	}
	for k, v := range overrides {
		t[modelKey(k)] = v
	}
	return Pricing{table: t, fallback: fallback}
}

// For returns model's price; known is false when neither the table nor a fallback prices it, and
// its cost is then counted as zero.
func (p Pricing) For(model string) (price Price, known bool) {
	if pr, ok := lookupModel(p.table, model); ok {
		return pr, true
	}
	if p.fallback != (Price{}) {
		return p.fallback, true
	}
	return Price{}, false
}

// ErrInvalidPrices is returned for a malformed AGENTD_LLM_PRICES.
var ErrInvalidPrices = errors.New("invalid prices (want model=input/output[/cache_read[/cache_write]],… in USD per million tokens)")

// ParsePrices reads "model=input/output[/cache_read[/cache_write]]" entries separated by commas or
// semicolons, in USD per million tokens.
func ParsePrices(s string) (map[string]Price, error) {
	out := map[string]Price{}
	for _, entry := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' }) {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		model, rates, ok := strings.Cut(entry, "=")
		model = strings.TrimSpace(model)
		parts := strings.Split(rates, "/")
		if !ok || model == "" || len(parts) < 2 || len(parts) > 4 {
			return nil, fmt.Errorf("%q: %w", entry, ErrInvalidPrices)
		}
		var v [4]float64
		for i, p := range parts {
			f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
			if err != nil || f < 0 {
				return nil, fmt.Errorf("%q: %w", entry, ErrInvalidPrices)
			}
			v[i] = f
		}
		out[model] = Price{InputPerMTok: v[0], OutputPerMTok: v[1], CacheReadPerMTok: v[2], CacheWritePerMTok: v[3]}
	}
	return out, nil
}
