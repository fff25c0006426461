package paper

import (
	"fmt"
	"strings"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
)

func windowText(win spec.Window) string {
	var parts []string
	if len(win.Days) > 0 {
		parts = append(parts, strings.Join(win.Days, ","))
	}
	if win.Start != "" || win.End != "" {
		parts = append(parts, win.Start+"-"+win.End)
	}
	if !win.From.IsZero() || !win.Until.IsZero() {
		parts = append(parts, when(win.From)+" .. "+when(win.Until))
	}
	tz := win.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	return strings.Join(append(parts, tz), " ")
}

func (b *planner) steps() {
	w, r, env := b.w, b.r, b.in.Environment
	b.d.section(4, w.t("3.2.3 Steps", "3.2.3 具体升级步骤"))
	s := b.d.section(5, w.t("1. Preparation", "1. 升级前准备"))
	s.para("%s", w.f("Tell the business departments of the plan and its impact, and make sure developers, testers, operations and the DBA are on hand. upshift tells the teams %s of every state change and every failed step.",
		"通知业务部门本方案及其影响，确认开发、测试、运维和数据库管理员到位。upshift 会将每次状态变化和每个失败步骤通知团队：%s。", w.join(r.Spec.Notify)))
	b.confirmAndAnnounce(s)
	approval := r.Spec.Approval.Required || env != nil && env.Approval
	switch {
	case approval && env != nil && env.ApprovalTimeout > 0:
		s.para("%s", w.f("After the checks pass, the saga waits for an operator's approval (upshift approve), at most %s.",
			"检查通过后，saga 等待运维人员批准（upshift approve），最长 %s。", env.ApprovalTimeout))
	case approval:
		s.para("%s", w.f("After the checks pass, the saga waits for an operator's approval (upshift approve), at most %s.",
			"检查通过后，saga 等待运维人员批准（upshift approve），最长 %s。", saga.DefaultApprovalTimeout))
	default:
		s.para("%s", w.t("No approval is required.", "无需审批。"))
	}
	var wins []string
	for _, x := range r.Spec.Windows {
		wins = append(wins, w.t("request: ", "请求：")+windowText(x))
	}
	if env != nil {
		for _, x := range env.Windows {
			wins = append(wins, w.t("environment: ", "环境：")+windowText(x))
		}
	}
	if len(wins) > 0 {
		s.para("%s", w.t("The backup and the deploy start only when every window below is open:", "备份与部署仅在以下所有窗口均开放时开始："))
		s.list(wins)
	} else {
		s.para("%s", w.t("No change window: the backup starts once the checks (and the approval) pass.", "无变更窗口：检查（及审批）通过后即开始备份。"))
	}
	if !r.Spec.Deadline.IsZero() {
		s.para("%s: %s", w.t("Deadline (no window before it fails the saga)", "截止时间（此前无窗口则失败）"), when(r.Spec.Deadline))
	}

	s = b.d.section(5, w.t("2. Backup", "2. 系统备份"))
	if r.Spec.Backup.Skip || r.Kind == spec.KindInstall || r.Kind == spec.KindMaintenance && !spec.ChangesData(r.Actions()) {
		s.para("%s", w.t("No backup: the request skips it, installs on an empty target, or changes no data.", "不备份：请求跳过备份、在空目标上首次安装，或不修改数据。"))
	} else {
		s.para("%s", w.f("When the window opens, every target is backed up (time-out %s): its current release, the paths it declares and its databases.",
			"窗口开放时备份每个目标（超时 %s）：当前版本、声明的路径及其数据库。", r.Spec.Timeouts.Backup))
		b.backupTable(s)
		s = b.d.section(5, w.t("3. Backup verification", "3. 备份验证"))
		s.para("%s", w.t("The backup service checks each archive's sha256 and every entry against its manifest before the saga goes on; a backup that does not verify fails the saga before anything is deployed.",
			"备份服务在继续之前按清单校验每个归档的 sha256 和每个条目；校验失败的备份会在部署前终止 saga。"))
	}

	s = b.d.section(5, w.t("4. Deploy", "4. 部署"))
	s.para("%s", w.f("Targets are deployed in batches of %d (time-out %s per step); each batch is verified before the next starts.",
		"目标按每批 %d 个部署（每步超时 %s）；每批验证通过后才开始下一批。", r.Spec.Rollout.BatchSize, r.Spec.Timeouts.Deploy))
	var rows [][]string
	for i, batch := range r.Batches() {
		rows = append(rows, []string{fmt.Sprint(i + 1), w.join(batch)})
	}
	s.table([]string{w.t("Batch", "批次"), w.t("Targets", "目标")}, rows)
	if r.Kind.Installs() {
		s.para("%s", w.t("On each target: stop, unpack the release, apply its database migrations, switch the current release, start.",
			"每个目标：停止服务、解包新版本、执行数据库迁移、切换当前版本、启动服务。"))
	}

	s = b.d.section(5, w.t("5. Verification", "5. 验证"))
	s.para("%s", w.f("After each batch, verify probes every target of it (time-out %s) with the checks it declares:",
		"每批部署后，按目标声明的检查验证该批每个目标（超时 %s）：", r.Spec.Timeouts.Verify))
	if b.in.Targets == nil {
		s.para("%s", w.t("No targets file was given: the verify checks each host declares are not known here.", "未提供目标配置文件：此处无法列出各主机声明的验证检查。"))
	} else {
		var rows [][]string
		for _, n := range r.Spec.Targets {
			t, ok := b.target(n)
			if !ok {
				rows = append(rows, []string{n, w.t("not in the targets file", "不在目标配置文件中"), "-"})
				continue
			}
			if t.Health.URL != "" {
				rows = append(rows, []string{n, "health " + t.Health.URL, "2xx"})
			}
			if t.Health.VersionURL != "" {
				rows = append(rows, []string{n, "version " + t.Health.VersionURL, r.Spec.To})
			}
			for _, c := range t.Verify.HTTP {
				th := "2xx"
				if c.Status != 0 {
					th = fmt.Sprint(c.Status)
				}
				if c.MaxLatency.Duration > 0 {
					th += ", <= " + c.MaxLatency.String()
				}
				rows = append(rows, []string{n, "http " + c.Name, th})
			}
			for _, c := range t.Verify.TCP {
				rows = append(rows, []string{n, "tcp " + c.Label(), w.t("accepts TCP connections", "可建立 TCP 连接")})
			}
			for _, c := range t.Verify.Smoke {
				rows = append(rows, []string{n, "smoke " + c.Name, w.t("exits 0", "退出码 0")})
			}
			for _, a := range t.Verify.Analyses {
				if !a.Optional {
					rows = append(rows, []string{n, "analysis " + a.Name, a.Condition})
				}
			}
		}
		s.table([]string{w.t("Target", "目标"), w.t("Check", "检查项"), w.t("Threshold", "阈值")}, rows)
	}
	if as := b.analyses(); len(as) > 0 {
		s.para("%s", w.t("Analyses selected by the request and the environment:", "请求和环境选定的分析："))
		s.list(as)
	}
}

func (b *planner) analyses() []string {
	sg := saga.Saga{Request: b.r}
	if b.in.Environment != nil {
		sg.Options.Verify = b.in.Environment.Verify
	}
	var out []string
	for _, a := range sg.Analyses() {
		if a.Threshold != nil {
			out = append(out, fmt.Sprintf("%s (%s %g)", a.Name, b.w.t("threshold", "阈值"), *a.Threshold))
		} else {
			out = append(out, a.Name)
		}
	}
	return out
}

func (b *planner) backupTable(s *Section) {
	w, r := b.w, b.r
	if b.in.Targets == nil {
		s.para("%s", w.t("No targets file was given: the paths and databases each host backs up are not known here.", "未提供目标配置文件：此处无法列出各主机备份的路径和数据库。"))
		return
	}
	var rows [][]string
	for _, n := range r.Spec.Targets {
		t, ok := b.target(n)
		if !ok {
			rows = append(rows, []string{n, w.t("not in the targets file", "不在目标配置文件中"), "-", "-"})
			continue
		}
		files := append([]string{w.t("current release", "当前版本")}, t.Backup.Paths...)
		var dbs []string
		for _, d := range t.Databases {
			dbs = append(dbs, d.Name)
		}
		dir := t.Backup.Dir
		if dir == "" {
			dir = "backups"
		}
		rows = append(rows, []string{n, w.join(files), w.join(dbs), dir})
	}
	s.table([]string{w.t("Target", "目标"), w.t("Files", "文件"), w.t("Databases", "数据库"), w.t("Backup directory", "备份目录")}, rows)
}

func (b *planner) rollback() {
	w, r := b.w, b.r
	s := b.d.section(3, w.t("3.3 Roll-back plan", "3.3 回滚方案"))
	s.para("%s", w.f("A failure or time-out in deploy, verification or the watch period, or a cancel, rolls back every target a step touched, one step at a time, newest first (time-out %s per step): first the deploys are rolled back to the previous release, then each touched target's backup is restored (files and databases). A failure in the checks or the backup changes nothing and needs no roll-back.",
		"部署、验证或观察期内失败或超时，或被取消时，对每个受影响目标逐步回滚，最新的先回滚（每步超时 %s）：先将部署回退到上一版本，再恢复每个受影响目标的备份（文件与数据库）。检查或备份阶段失败不会改动任何内容，无需回滚。", r.Spec.Timeouts.Rollback))
	batches := r.Batches()
	var rows [][]string
	restore := !r.Spec.Backup.Skip && r.Kind != spec.KindInstall
	for i := len(batches) - 1; i >= 0; i-- {
		for j := len(batches[i]) - 1; j >= 0; j-- {
			rows = append(rows, []string{fmt.Sprint(len(rows) + 1), batches[i][j], fmt.Sprint(i + 1), "deploy " + string(events.ActionRollback)})
		}
	}
	if restore {
		for i := len(batches) - 1; i >= 0; i-- {
			for j := len(batches[i]) - 1; j >= 0; j-- {
				rows = append(rows, []string{fmt.Sprint(len(rows) + 1), batches[i][j], fmt.Sprint(i + 1), "backup " + string(events.ActionRestore)})
			}
		}
	}
	s.para("%s", w.t("If every batch was deployed, the order is:", "若所有批次均已部署，回滚顺序为："))
	s.table([]string{"#", w.t("Target", "目标"), w.t("Batch", "批次"), w.t("Action", "操作")}, rows)
	s.para("%s", w.t("A roll-back step that fails ends the saga rollback_failed, naming what a person must put right.", "回滚步骤失败时 saga 以 rollback_failed 结束，并指明需人工处理的内容。"))
}

func (b *planner) notify() {
	w, r := b.w, b.r
	s := b.d.section(3, w.t("3.4 Notification", "3.4 通知"))
	var rows [][]string
	for _, team := range r.Spec.Notify {
		rows = append(rows, []string{team, w.t("every state change of the saga and every failed step", "saga 的每次状态变化和每个失败步骤")})
	}
	s.table([]string{w.t("Team", "团队"), w.t("Hears of", "通知内容")}, rows)
	s.para("%s", w.t("Each team receives its notices on the channels the notify service configures for it (upshift notices --team TEAM shows them).",
		"各团队通过通知服务为其配置的渠道接收通知（可用 upshift notices --team TEAM 查看）。"))
}

func (b *planner) monitor() {
	w := b.w
	s := b.d.section(3, w.t("3.5 Monitoring after the upgrade", "3.5 升级后监控"))
	sg := saga.Saga{Request: b.r}
	if b.in.Environment != nil {
		sg.Options.Verify = b.in.Environment.Verify
	}
	if watch := sg.Watch(); watch > 0 {
		s.para("%s", w.f("After the last batch, every target stays under watch for %s: the health probes and analyses keep running, and a failure rolls every batch back.",
			"最后一批完成后，所有目标进入 %s 的观察期：健康探测与分析持续运行，任何失败将回滚所有批次。", watch))
	} else {
		s.para("%s", w.t("No watch period: the saga succeeds when the last batch verifies.", "无观察期：最后一批验证通过即成功。"))
	}
}

func (b *planner) signOff() {
	w := b.w
	s := b.d.section(2, w.t("4 Sign-off", "4 签字确认"))
	roles := []struct{ role, name string }{
		{w.t("Author", "编制人"), b.p.Author}, {w.t("Reviewer", "审核人"), b.p.Reviewer}, {w.t("Approver", "批准人"), b.p.Approver},
		{w.t("Developers", "开发"), ""}, {w.t("Testers", "测试"), ""}, {w.t("Operations", "运维"), ""}, {w.t("DBA", "数据库管理员"), ""},
		{w.t("Business owner", "业务负责人"), ""},
	}
	var rows [][]string
	for _, x := range roles {
		rows = append(rows, []string{x.role, x.name, "", ""})
	}
	s.table([]string{w.t("Role", "角色"), w.t("Name", "姓名"), w.t("Signature", "签字"), w.t("Date", "日期")}, rows)
}

// lastAttempts are the last attempt of each target's steps of a phase
// (compensations left out), in the order the targets first appear.
func lastAttempts(steps []*saga.Step, p events.Phase) []*saga.Step {
	idx := map[string]int{}
	var out []*saga.Step
	for _, st := range steps {
		if st.Phase != p || st.Compensates != "" {
			continue
		}
		key := fmt.Sprintf("%s/%d/%s", st.Target, st.Batch, st.Action)
		if i, ok := idx[key]; ok {
			out[i] = st
			continue
		}
		idx[key] = len(out)
		out = append(out, st)
	}
	return out
}

func dashed(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func result(w words, l events.ReportLine) string {
	st := string(l.Status)
	if st == "" {
		st = map[bool]string{true: "pass", false: "fail"}[l.OK]
	}
	if l.Detail != "" && !l.OK {
		return st + ": " + l.Detail
	}
	return st
}

func stepText(w words, st *saga.Step) string {
	out := string(st.Status)
	if st.Reason != "" {
		out += ": " + st.Reason
	}
	if st.Error != "" {
		out += " (" + st.Error + ")"
	}
	return out
}

// confirmAndAnnounce says who confirms before the approval and the backup,
// and who hears of the plan before the window: the request's and the
// environment's, merged as the saga merges them.
func (b *planner) confirmAndAnnounce(s *Section) {
	w := b.w
	var opts saga.Options
	if env := b.in.Environment; env != nil {
		opts.Confirm, opts.Announce = env.Confirm, env.Announce
	}
	o := saga.New("plan", b.r, opts, b.in.Date).Options
	if roles := o.Confirm.Roles; len(roles) > 0 {
		s.para("%s", w.f("After the checks pass and before the approval, someone of each of these roles confirms being on hand (upshift confirm ID --role ROLE), within %s, or the saga fails naming who did not: %s.",
			"检查通过后、审批之前，以下每个角色须有人确认到位（upshift confirm ID --role 角色），限时 %s，否则 saga 失败并列出未确认的角色：%s。",
			o.Confirm.Timeout.Duration, w.join(roles)))
	}
	if teams := o.Announce.Teams; len(teams) > 0 {
		s.para("%s", w.f("The plan (software, versions, targets, window) is announced to %s, %s before the window opens (at once with no window).",
			"本方案（软件、版本、目标、窗口）将在窗口开放前 %[2]s 通告 %[1]s（无窗口时立即通告）。", w.join(teams), o.Announce.Before.Duration))
	}
}
