package paper

import (
	"fmt"
	"strings"
	"time"
)

// words picks the English or the Chinese of each phrase; the Chinese
// headings are the plan template's own, word for word.
type words struct{ lang Lang }

func (w words) t(en, zh string) string {
	if w.lang == Chinese {
		return zh
	}
	return en
}

func (w words) f(en, zh string, args ...any) string { return fmt.Sprintf(w.t(en, zh), args...) }

// or is s, or a note that the request does not say (naming the field to
// fill in): a section without data says so rather than inventing.
func (w words) or(s, field string) string {
	if strings.TrimSpace(s) != "" {
		return s
	}
	return w.notGiven(field)
}

func (w words) notGiven(field string) string {
	return w.f("Not given in the request (%s).", "请求中未提供（%s）。", field)
}

func (w words) join(items []string) string {
	if len(items) == 0 {
		return w.t("none", "无")
	}
	return strings.Join(items, w.t(", ", "、"))
}

// when formats a time in UTC, or a dash for none.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// took is the time between two instants, rounded to the second.
func took(from, to time.Time) string {
	if from.IsZero() || to.IsZero() || to.Before(from) {
		return "-"
	}
	return to.Sub(from).Round(time.Second).String()
}
