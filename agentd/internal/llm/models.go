package llm

import (
	"regexp"
	"strings"
)

// What agentd knows about models by name. Names are matched after normalising (see modelKey) by
// the longest table key that is the whole name or a prefix of it ending at '-', ':', '@' or '/', so
// "gpt-4o-2024-08-06" finds "gpt-4o" but "gpt-4o" never finds "gpt-4", and "gpt-5.4" (another
// model) never falls back to "gpt-5".

// modelKey normalises a model name: lower case, without the vendor prefixes routers and clouds put
// in front ("openai/gpt-4o", "anthropic/claude-sonnet-4.5", Bedrock's "us.anthropic.claude-…"),
// and with Claude's dotted versions spelled the API's way ("claude-sonnet-4.5" → "claude-sonnet-4-5").
func modelKey(model string) string {
	m := strings.ToLower(strings.TrimSpace(model))
	if i := strings.LastIndex(m, "/"); i >= 0 {
		m = m[i+1:]
	}
	if i := strings.Index(m, "claude-"); i > 0 {
		m = m[i:]
	}
	if strings.HasPrefix(m, "claude-") {
		m = strings.ReplaceAll(m, ".", "-")
	}
	return m
}

// lookupModel finds model's entry in table by the longest matching key.
func lookupModel[T any](table map[string]T, model string) (T, bool) {
	key := modelKey(model)
	best, found := "", false
	var out T
	for k, v := range table {
		if len(k) <= len(best) && found {
			continue
		}
		if key == k || (strings.HasPrefix(key, k) && strings.ContainsRune("-:@/", rune(key[len(k)]))) {
			best, out, found = k, v, true
		}
	}
	return out, found
}

// defaultOutputCaps are the output caps agentd asks for when AGENTD_LLM_MAX_OUTPUT_TOKENS does not
// set one: large enough that a sizeable file fits in one tool call, below each model's maximum.
// Reasoning models spend part of the cap thinking, so theirs is larger. Anthropic models take
// 32,000 even where they allow 64K or 128K: the output-tokens-per-minute rate limit is charged
// up front from max_tokens, and a longer answer is better split into edits anyway.
var defaultOutputCaps = map[string]int{
	"gpt-3.5-turbo": 4096, "gpt-4": 4096, "gpt-4-turbo": 4096,
	"gpt-4o": 16384, "gpt-4o-mini": 16384, "chatgpt-4o": 16384,
	"gpt-4.1": 32768, "gpt-4.1-mini": 32768, "gpt-4.1-nano": 32768,
	"o1": 32768, "o1-mini": 32768, "o3": 32768, "o3-mini": 32768, "o4-mini": 32768, "codex-mini": 32768,
	"gpt-5": 32768, "gpt-5.1": 32768, "gpt-5.2": 32768, "gpt-5.3": 32768, "gpt-5.4": 32768, "gpt-5.5": 32768,
	"gpt-5.6": 32768, "gpt-6": 32768, "gpt-6.1": 32768,
	"deepseek-chat": 8192, "deepseek-reasoner": 32768,
	"claude-2": 4096, "claude-instant": 4096, "claude-3-haiku": 4096, "claude-3-opus": 4096, "claude-3-sonnet": 4096,
	"claude-3-5-haiku": 8192, "claude-3-5-sonnet": 8192,
	"claude-3-7-sonnet": 32000, "claude": 32000,
}

// Output caps for models the table does not know. An unknown OpenAI-compatible model is often a
// local one with a small context window, where vLLM rejects a cap that does not fit beside the
// prompt; an unknown name on the Anthropic API is a newer Claude.
const (
	fallbackOutputCapOpenAI    = 4096
	fallbackOutputCapAnthropic = 8192
)

// MaxOutputTokens returns the output cap agentd uses for model when none is configured; fallback
// applies to models it does not know.
func MaxOutputTokens(model string, fallback int) int {
	if n, ok := lookupModel(defaultOutputCaps, model); ok {
		return n
	}
	return fallback
}

// completionTokensModels are the OpenAI models that reject max_tokens and take
// max_completion_tokens instead: the reasoning series (o1, o3, o4-mini…) and GPT-5 onwards.
var completionTokensModels = regexp.MustCompile(`^(o[1-9]|gpt-([5-9]|[1-9][0-9])|codex)`)

// usesCompletionTokens reports whether model takes max_completion_tokens; extra is an operator's
// additional pattern (nil for none).
func usesCompletionTokens(model string, extra *regexp.Regexp) bool {
	key := modelKey(model)
	return completionTokensModels.MatchString(key) || (extra != nil && (extra.MatchString(model) || extra.MatchString(key)))
}
