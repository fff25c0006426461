package paper

import (
	"fmt"
	"sort"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// Report builds the report of a saga from the saga and its audit log
// (nil: the notices sent are not known).
func Report(s saga.Saga, history []sagastore.Entry, lang Lang) Doc {
	w := words{lang}
	r := s.Request
	d := Doc{Lang: lang, Title: w.f("%s change report: %s", "%s 变更实施报告：%s", r.Spec.Software, s.ID)}

	sec := d.section(2, w.t("1 Request", "1 变更请求"))
	rows := [][]string{
		{w.t("Saga", "Saga"), s.ID}, {w.t("Change", "变更"), r.Title()},
		{w.t("Team", "团队"), r.Metadata.Team}, {w.t("Environment", "环境"), r.Metadata.Environment},
		{w.t("Targets", "目标"), w.join(r.Spec.Targets)}, {w.t("Submitted", "提交时间"), when(s.CreatedAt)},
	}
	if p := r.Spec.Plan; p != nil && p.Change != "" {
		rows = append(rows, []string{w.t("Change ticket", "变更单"), p.Change})
	}
	decision := func(label string, dec *saga.Decision) {
		if dec != nil {
			v := w.f("%s at %s", "%s，%s", dec.Actor, when(dec.At))
			if dec.Comment != "" {
				v += ": " + dec.Comment
			}
			rows = append(rows, []string{label, v})
		}
	}
	decision(w.t("Approved by", "批准人"), s.Approval)
	decision(w.t("Rejected by", "驳回人"), s.Rejection)
	decision(w.t("Cancelled by", "取消人"), s.Cancel)
	if s.Approval == nil && s.Rejection == nil && !s.Options.RequireApproval {
		rows = append(rows, []string{w.t("Approved by", "批准人"), w.t("no approval was required", "无需审批")})
	}
	rows = append(rows, confirmations(w, s)...)
	sec.table([]string{w.t("Item", "项目"), w.t("Value", "内容")}, rows)

	sec = d.section(2, w.t("2 Timeline", "2 时间线"))
	sec.table([]string{w.t("Phase", "阶段"), w.t("Batch", "批次"), w.t("Started", "开始"), w.t("Finished", "结束"), w.t("Duration", "耗时"), w.t("Outcome", "结果")},
		timeline(w, s))
	sec.para("%s", w.f("From submission to the end: %s.", "从提交到结束：%s。", took(s.CreatedAt, s.UpdatedAt)))

	sec = d.section(2, w.t("3 Environment checks", "3 环境检查"))
	lines(w, sec, s.Steps, events.Precheck, w.t("No check was run.", "未执行检查。"))

	sec = d.section(2, w.t("4 Backups", "4 备份"))
	rows = nil
	for _, st := range lastAttempts(s.Steps, events.Backup) {
		if st.Action != events.ActionArchive {
			continue
		}
		rows = append(rows, []string{st.Target, stepText(w, st), dashed(st.Output["backup"]), dashed(st.Output["archive_sha256"]),
			dashed(st.Output["bytes"]), dashed(st.Output["databases"]), verifiedLine(st)})
	}
	if len(rows) == 0 {
		sec.para("%s", w.t("No backup was taken.", "未进行备份。"))
	}
	sec.table([]string{w.t("Target", "目标"), w.t("Result", "结果"), w.t("Where", "位置"), "sha256", w.t("Bytes", "字节"), w.t("Databases", "数据库"), w.t("Verification", "备份验证")}, rows)

	sec = d.section(2, w.t("5 Deploy", "5 部署"))
	rows = nil
	for _, st := range lastAttempts(s.Steps, events.Deploy) {
		rows = append(rows, []string{st.Target, fmt.Sprint(st.Batch), string(st.Action), stepText(w, st), took(st.StartedAt, st.FinishedAt)})
	}
	if len(rows) == 0 {
		sec.para("%s", w.t("Nothing was deployed.", "未进行部署。"))
	}
	sec.table([]string{w.t("Target", "目标"), w.t("Batch", "批次"), w.t("Action", "操作"), w.t("Result", "结果"), w.t("Duration", "耗时")}, rows)

	sec = d.section(2, w.t("6 Verification", "6 验证"))
	lines(w, sec, s.Steps, events.Verify, w.t("No verification was run.", "未执行验证。"))

	sec = d.section(2, w.t("7 Roll-back", "7 回滚"))
	rows = nil
	for _, st := range s.Steps {
		if st.Compensates == "" {
			continue
		}
		rows = append(rows, []string{fmt.Sprint(len(rows) + 1), st.Target, string(st.Phase) + " " + string(st.Action), stepText(w, st), took(st.StartedAt, st.FinishedAt)})
	}
	if len(rows) == 0 {
		sec.para("%s", w.t("Nothing was rolled back.", "未发生回滚。"))
	} else {
		sec.para("%s: %s", w.t("Why", "原因"), rollbackReason(s))
		sec.table([]string{"#", w.t("Target", "目标"), w.t("Action", "操作"), w.t("Result", "结果"), w.t("Duration", "耗时")}, rows)
	}

	sec = d.section(2, w.t("8 Notices", "8 通知"))
	notices(w, sec, history)

	sec = d.section(2, w.t("9 Final state", "9 最终状态"))
	sec.para("%s: %s (%s)", w.t("State", "状态"), s.State, when(s.EnteredAt))
	if s.Reason != "" {
		sec.para("%s: %s", w.t("Reason", "原因"), s.Reason)
	}
	return d
}

// timeline has a row per phase and batch: when its first step started,
// when its last finished, and how it came out.
func timeline(w words, s saga.Saga) [][]string {
	type span struct {
		phase       string
		batch       int
		first, last *saga.Step
		failed      []string
		n           int
	}
	var order []string
	spans := map[string]*span{}
	for _, st := range s.Steps {
		name := string(st.Phase)
		if st.Compensates != "" {
			name = w.t("roll-back", "回滚")
		}
		key := fmt.Sprintf("%s/%d", name, st.Batch)
		sp, ok := spans[key]
		if !ok {
			sp = &span{phase: name, batch: st.Batch, first: st, last: st}
			spans[key] = sp
			order = append(order, key)
		}
		sp.n++
		if start(st).Before(start(sp.first)) {
			sp.first = st
		}
		if st.FinishedAt.After(sp.last.FinishedAt) {
			sp.last = st
		}
		if st.Status != saga.StepSucceeded {
			sp.failed = append(sp.failed, st.Target+" "+string(st.Status))
		}
	}
	var rows [][]string
	for _, k := range order {
		sp := spans[k]
		out := w.f("%d step(s) succeeded", "%d 步成功", sp.n)
		if len(sp.failed) > 0 {
			sort.Strings(sp.failed)
			out = w.join(sp.failed)
		}
		batch := "-"
		if sp.batch > 0 {
			batch = fmt.Sprint(sp.batch)
		}
		rows = append(rows, []string{sp.phase, batch, when(start(sp.first)), when(sp.last.FinishedAt), took(start(sp.first), sp.last.FinishedAt), out})
	}
	return rows
}

func start(st *saga.Step) time.Time {
	if !st.StartedAt.IsZero() {
		return st.StartedAt
	}
	return st.DispatchedAt
}

func lines(w words, sec *Section, steps []*saga.Step, p events.Phase, none string) {
	var rows [][]string
	for _, st := range lastAttempts(steps, p) {
		for _, l := range st.Report {
			rows = append(rows, []string{st.Target, l.Name, dashed(l.Threshold), dashed(l.Value), result(w, l)})
		}
		if len(st.Report) == 0 {
			rows = append(rows, []string{st.Target, string(st.Action), "-", "-", stepText(w, st)})
		}
	}
	if len(rows) == 0 {
		sec.para("%s", none)
	}
	sec.table([]string{w.t("Target", "目标"), w.t("Check", "检查项"), w.t("Threshold", "阈值"), w.t("Measured", "实测值"), w.t("Result", "结果")}, rows)
}

func verifiedLine(st *saga.Step) string {
	for _, l := range st.Report {
		if l.Name == "verification" {
			return result(words{}, l) + ": " + l.Detail
		}
	}
	return "-"
}

// rollbackReason is why the saga rolled back: the reason it gave on
// entering rolling_back, kept as its reason unless the roll-back failed.
func rollbackReason(s saga.Saga) string {
	if s.Reason != "" {
		return s.Reason
	}
	return "-"
}

// notices lists what the teams were told: every saga event the coordinator
// published names the teams the notify service delivers it to.
func notices(w words, sec *Section, history []sagastore.Entry) {
	if history == nil {
		sec.para("%s", w.t("The audit log was not available: the notices sent are not known.", "审计日志不可用：无法列出已发送的通知。"))
		return
	}
	var rows [][]string
	for _, e := range history {
		_, ev, ok, err := e.SagaEvent()
		if !ok {
			continue
		}
		if err != nil {
			rows = append(rows, []string{when(e.At), "-", "-", w.t("unreadable: ", "无法解析：") + err.Error()})
			continue
		}
		rows = append(rows, []string{when(e.At), w.join(ev.Teams), ev.Kind, dashed(ev.Reason)})
	}
	if len(rows) == 0 {
		sec.para("%s", w.t("The audit log records no event sent to the teams.", "审计日志中没有发给团队的事件。"))
		return
	}
	sec.para("%s", w.t("Each event below went to the teams named, through the channels the notify service configures for them.", "下列每个事件经通知服务为各团队配置的渠道发送给所列团队。"))
	sec.table([]string{w.t("Time", "时间"), w.t("Teams", "团队"), w.t("Event", "事件"), w.t("Reason", "原因")}, rows)
}

// confirmations are a row per role the saga asked to confirm: who
// confirmed it and when, or that nobody did.
func confirmations(w words, s saga.Saga) [][]string {
	if len(s.Options.Confirm.Roles) == 0 {
		return [][]string{{w.t("Confirmed by", "确认人"), w.t("no confirmation was asked", "无需确认")}}
	}
	var rows [][]string
	for _, role := range s.Options.Confirm.Roles {
		label := w.f("Confirmed by (%s)", "确认人（%s）", role)
		c, ok := s.Confirmed(role)
		if !ok {
			rows = append(rows, []string{label, w.t("not confirmed", "未确认")})
			continue
		}
		v := w.f("%s at %s", "%s，%s", c.By, when(c.At))
		if c.Comment != "" {
			v += ": " + c.Comment
		}
		rows = append(rows, []string{label, v})
	}
	return rows
}
