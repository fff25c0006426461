package precheck

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"
)

// versionRE finds what looks like a version: numbers separated by dots.
var versionRE = regexp.MustCompile(`\d+(\.\d+)*`)

// version reads the leading numbers of a version as major.minor.patch, so
// that what hosts and servers print compares: "16.4 (Ubuntu 16.4-1)" is
// 16.4.0, kernel "6.8.0-1026-azure" is 6.8.0, "22.04" is 22.4.0. Pre-release
// suffixes are dropped on purpose: a constraint ">=5.4" should hold for a
// distribution's kernel 6.8.0-1026.
func version(s string) (*semver.Version, string, error) {
	m := versionRE.FindString(s)
	if m == "" {
		return nil, "", fmt.Errorf("no version in %q", clipText(s, 80))
	}
	var parts [3]uint64
	for i, p := range strings.SplitN(m, ".", 4)[:min(3, strings.Count(m, ".")+1)] {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return nil, m, fmt.Errorf("version %q: %w", m, err)
		}
		parts[i] = n
	}
	return semver.New(parts[0], parts[1], parts[2], "", ""), m, nil
}

// satisfies holds the version found in s against the constraint c ("" holds
// any). It returns the version as found, for the report.
func satisfies(s, c string) (string, error) {
	v, found, err := version(s)
	if err != nil || c == "" {
		return found, err
	}
	cs, err := semver.NewConstraint(c)
	if err != nil {
		return found, fmt.Errorf("constraint %q: %w", c, err)
	}
	if ok, errs := cs.Validate(v); !ok {
		why := make([]string, 0, len(errs))
		for _, e := range errs {
			why = append(why, e.Error())
		}
		return found, fmt.Errorf("version %s does not satisfy %s: %s", found, c, strings.Join(why, "; "))
	}
	return found, nil
}

// clipText bounds a piece of a remote answer quoted in a report.
func clipText(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
