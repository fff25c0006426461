package paper

import (
	"fmt"
	"strings"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/targets"
)

// Environment is what the coordinator's policy says of the request's
// environment, as far as a plan needs it; the CLI fills it in from the
// policy file, so this package needs no coordinator.
type Environment struct {
	Approval         bool
	ApprovalTimeout  time.Duration
	Windows          []spec.Window
	RequireSignature bool
	// Rehearsal names the environment the same artifact must have
	// succeeded in first, if any.
	Rehearsal string
	Verify    spec.Verify
	// Confirm and Announce of the environment; the request's join them.
	Confirm  spec.Confirm
	Announce spec.Announce
}

// PlanInput is what a plan is made of. Only Request is required.
type PlanInput struct {
	Request spec.Request
	// Targets is the registry the targets are declared in: their checks,
	// backups and databases. Nil: those sections say they are not known.
	Targets *targets.Registry
	// Environment is the policy of the request's environment; nil: none
	// was given.
	Environment *Environment
	// DryRun is a dry-run saga whose precheck reports give the measured
	// values of each check.
	DryRun *saga.Saga
	// Date of the document.
	Date time.Time
}

// Plan builds the implementation plan of a request.
func Plan(in PlanInput, lang Lang) Doc {
	b := planner{in: in, w: words{lang}, r: in.Request.WithDefaults()}
	return b.build()
}

type planner struct {
	in PlanInput
	w  words
	r  spec.Request
	p  spec.Plan
	d  Doc
}

func (b *planner) build() Doc {
	w, r := b.w, b.r
	if r.Spec.Plan != nil {
		b.p = *r.Spec.Plan
	}
	version := r.Spec.To
	if version == "" {
		version = r.Spec.From
	}
	b.d = Doc{Lang: w.lang, Title: w.f("%s V%s maintenance and upgrade implementation plan", "%s V%s 维护与升级实施方案", r.Spec.Software, version)}
	b.control()
	b.introduction()
	b.current()
	b.detail()
	b.signOff()
	return b.d
}

func (b *planner) control() {
	w, p := b.w, b.p
	s := b.d.section(2, w.t("Document control", "文档版本信息"))
	dash := func(v string) string {
		if v == "" {
			return "-"
		}
		return v
	}
	remark := p.Remark
	if p.Change != "" {
		remark = strings.TrimSpace(w.f("Change %s. ", "变更单 %s。", p.Change) + remark)
	}
	s.table([]string{w.t("Version", "版本号"), w.t("Date", "日期"), w.t("Author", "编制人"), w.t("Reviewer", "审核人"),
		w.t("Approver", "批准人"), w.t("Remark", "备注")},
		[][]string{{dash(p.Version), b.in.Date.UTC().Format("2006-01-02"), dash(p.Author), dash(p.Reviewer), dash(p.Approver), dash(remark)}})
	s.para("%s: %s", w.t("Issuing department", "编制单位"), w.or(p.Department, "spec.plan.department"))
}

func (b *planner) introduction() {
	w, r, p := b.w, b.r, b.p
	b.d.section(2, w.t("1 Introduction", "1 引言"))
	s := b.d.section(3, w.t("1.1 Purpose", "1.1 目的"))
	if p.Purpose != "" {
		s.para("%s", p.Purpose)
	}
	s.para("%s", w.f("This plan carries out the %s on %d target(s) in the %s environment, for team %s, in order and under control: each check, backup, step, notification and roll-back below is an automated action of upshift, recorded in the saga's audit log.",
		"本方案在 %[3]s 环境的 %[2]d 个目标上执行：%[1]s（团队 %[4]s），过程有序可控；下文的每项检查、备份、步骤、通知和回滚都是 upshift 的自动化操作，并记录在 saga 的审计日志中。",
		r.Title(), len(r.Spec.Targets), r.Metadata.Environment, r.Metadata.Team))
	s = b.d.section(3, w.t("1.2 Background", "1.2 背景"))
	s.para("%s", w.or(p.Background, "spec.plan.background"))
	b.d.section(3, w.t("1.3 Scope", "1.3 范围"))
	s = b.d.section(4, w.t("1.3.1 System scope", "1.3.1 系统范围"))
	s.para("%s: %s", w.t("Software", "软件"), r.Spec.Software)
	if len(p.Modules) > 0 {
		s.para("%s", w.t("Modules and components:", "模块与组件："))
		s.list(p.Modules)
	} else {
		s.para("%s: %s", w.t("Modules and components", "模块与组件"), w.notGiven("spec.plan.modules"))
	}
	if dbs := b.databases(); len(dbs) > 0 {
		s.para("%s: %s", w.t("Databases", "数据库"), w.join(dbs))
	}
	s = b.d.section(4, w.t("1.3.2 Environment scope", "1.3.2 环境范围"))
	s.para("%s: %s", w.t("Environment", "环境"), r.Metadata.Environment)
	s.para("%s: %s", w.t("Targets", "目标"), w.join(r.Spec.Targets))
	if len(p.Zones) > 0 {
		s.para("%s: %s", w.t("Network zones", "网络区域"), w.join(p.Zones))
	} else {
		s.para("%s: %s", w.t("Network zones", "网络区域"), w.notGiven("spec.plan.zones"))
	}
	if e := b.in.Environment; e != nil && e.Rehearsal != "" {
		s.para("%s", w.f("The same artifact must have succeeded in the %s environment first (the environment's policy).",
			"同一升级包须先在 %s 环境成功执行（环境策略要求）。", e.Rehearsal))
	}
	s = b.d.section(4, w.t("1.3.3 Out of scope", "1.3.3 不包含范围"))
	if len(p.OutOfScope) > 0 {
		s.list(p.OutOfScope)
	} else {
		s.para("%s", w.notGiven("spec.plan.outOfScope"))
	}
	s = b.d.section(3, w.t("1.4 Audience", "1.4 目标读者"))
	s.list([]string{w.t("project manager", "项目经理"), w.t("technical lead", "技术负责人"), w.t("developers", "开发人员"),
		w.t("testers", "测试人员"), w.t("operations", "运维人员"), w.t("DBA", "数据库管理员"), w.t("business owners", "业务负责人")})
	s.para("%s: %s", w.t("Teams notified by upshift", "upshift 通知的团队"), w.join(r.Spec.Notify))
	s = b.d.section(3, w.t("1.5 References", "1.5 参考文档"))
	if len(p.References) > 0 {
		s.list(p.References)
	} else {
		s.para("%s", w.notGiven("spec.plan.references"))
	}
}

func (b *planner) current() {
	w, r, p := b.w, b.r, b.p
	b.d.section(2, w.t("2 Current state", "2 现状分析"))
	s := b.d.section(3, w.t("2.1 Current system", "2.1 当前系统状况"))
	switch {
	case r.Kind == spec.KindInstall:
		s.para("%s", w.t("Nothing is installed: this is a first install.", "目标上尚未安装：本次为首次安装。"))
	case r.Spec.From != "":
		s.para("%s: V%s", w.t("Installed version", "当前运行版本"), r.Spec.From)
	default:
		s.para("%s: %s", w.t("Installed version", "当前运行版本"), w.notGiven("spec.from"))
	}
	if r.Kind != spec.KindInstall {
		s.para("%s: %s", w.t("In service since", "运行起始时间"), w.or(p.InstalledSince, "spec.plan.installedSince"))
	}
	if len(p.KnownIssues) > 0 {
		s.para("%s", w.t("Known issues:", "已知问题："))
		s.list(p.KnownIssues)
	} else {
		s.para("%s: %s", w.t("Known issues", "已知问题"), w.notGiven("spec.plan.knownIssues"))
	}
	s = b.d.section(3, w.t("2.2 Needs", "2.2 维护与升级需求概述"))
	if len(p.Needs) > 0 {
		s.list(p.Needs)
	} else {
		s.para("%s", w.notGiven("spec.plan.needs"))
	}
}

func (b *planner) detail() {
	w, r := b.w, b.r
	b.d.section(2, w.t("3 Detailed maintenance and upgrade plan", "3 维护与升级详细方案"))
	s := b.d.section(3, w.t("3.1 Maintenance work", "3.1 维护内容与措施"))
	if acts := r.Actions(); len(acts) > 0 {
		var items []string
		for _, a := range acts {
			items = append(items, a+": "+actionText(w, a))
		}
		s.list(items)
		if spec.ChangesData(acts) {
			s.para("%s", w.t("These actions change data: every target is backed up first, and a failure restores that backup.",
				"这些操作会修改数据：每个目标先备份，失败时恢复该备份。"))
		}
	} else {
		s.para("%s", w.t("No maintenance action in this request.", "本请求不含维护操作。"))
	}
	b.d.section(3, w.t("3.2 Upgrade", "3.2 升级内容与步骤"))
	b.pkg()
	b.checks()
	b.steps()
	b.rollback()
	b.notify()
	b.monitor()
}

func actionText(w words, a string) string {
	switch a {
	case spec.ActionReindex:
		return w.t("rebuild the indexes of each table of the target's databases", "重建目标数据库各表的索引")
	case spec.ActionAnalyze:
		return w.t("update the statistics of the target's databases", "更新目标数据库的统计信息")
	case spec.ActionVacuum:
		return w.t("vacuum and analyze the target's databases", "清理并分析目标数据库")
	case spec.ActionPurge:
		return w.t("run the clean-up statements the target declares for redundant data", "执行目标声明的冗余数据清理语句")
	case spec.ActionArchiveLogs:
		return w.t("archive historical logs and check logging still writes", "归档历史日志并确认日志功能正常")
	case spec.ActionConfigDrift:
		return w.t("compare the configuration files with the recorded baseline", "将配置文件与记录的基线比对")
	case spec.ActionConfigBaseline:
		return w.t("record the configuration files as the new baseline", "将配置文件记录为新的基线")
	case spec.ActionRestore:
		return w.t("put back the backup of an earlier saga", "恢复此前某次 saga 的备份")
	}
	return a
}

func (b *planner) pkg() {
	w, r := b.w, b.r
	s := b.d.section(4, w.t("3.2.1 Package preparation", "3.2.1 升级包准备"))
	if !r.Kind.Installs() {
		s.para("%s", w.t("No package: a maintenance run installs nothing.", "无升级包：维护操作不安装任何软件。"))
		return
	}
	a := r.Spec.Artifact
	sig := a.Signature
	if sig == "" {
		sig = w.t("none", "无")
	}
	s.table([]string{w.t("Item", "项目"), w.t("Value", "内容")}, [][]string{
		{w.t("Artifact", "升级包"), a.URL}, {w.t("Digest", "校验值"), a.Digest}, {w.t("Signature", "签名"), sig}})
	s.para("%s", w.t("Precheck downloads the package on every target, verifies its digest and, if signed, its signature against the keys its operator trusts; a mismatch stops the saga before anything changes.",
		"预检查在每个目标上下载升级包，校验其校验值，若有签名则用运维信任的公钥验证签名；不一致时在任何改动之前终止。"))
	if e := b.in.Environment; e != nil && e.RequireSignature {
		s.para("%s", w.t("The environment's policy requires a signed package.", "环境策略要求升级包必须签名。"))
	}
}

func (b *planner) target(name string) (targets.Target, bool) {
	if b.in.Targets == nil {
		return targets.Target{}, false
	}
	t, err := b.in.Targets.Get(name)
	return t, err == nil
}

func (b *planner) databases() []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range b.r.Spec.Targets {
		t, _ := b.target(n)
		for _, d := range t.Databases {
			if !seen[d.Name] {
				seen[d.Name] = true
				out = append(out, d.Name)
			}
		}
	}
	return out
}

// declaredChecks lists a target's precheck checks with their thresholds.
func declaredChecks(w words, p targets.Precheck) [][2]string {
	disk := p.MinFreeDisk
	if disk == 0 {
		disk = 100 << 20
	}
	out := [][2]string{{w.t("free disk at the root", "根目录可用磁盘"), ">= " + disk.String()}}
	if p.MinFreeDiskPercent > 0 {
		out = append(out, [2]string{w.t("free disk share", "可用磁盘比例"), fmt.Sprintf(">= %g%%", p.MinFreeDiskPercent)})
	}
	if p.MinMemory > 0 {
		out = append(out, [2]string{w.t("available memory", "可用内存"), ">= " + p.MinMemory.String()})
	}
	if p.MinCPUs > 0 {
		out = append(out, [2]string{w.t("logical CPUs", "逻辑 CPU 数"), fmt.Sprintf(">= %d", p.MinCPUs)})
	}
	if p.MaxLoadPerCPU > 0 {
		out = append(out, [2]string{w.t("load per CPU", "每 CPU 负载"), fmt.Sprintf("<= %g", p.MaxLoadPerCPU)})
	}
	if o := p.OS; o != nil {
		var th []string
		if len(o.Names) > 0 {
			th = append(th, strings.Join(o.Names, "|"))
		}
		if o.Version != "" {
			th = append(th, "version "+o.Version)
		}
		if o.Kernel != "" {
			th = append(th, "kernel "+o.Kernel)
		}
		out = append(out, [2]string{w.t("operating system", "操作系统"), strings.Join(th, ", ")})
	}
	for _, d := range p.Databases {
		out = append(out, [2]string{w.t("database ", "数据库 ") + d.Name, versionOr(w, d.Version)})
	}
	for _, m := range p.Middleware {
		out = append(out, [2]string{w.t("middleware ", "中间件 ") + m.Name, versionOr(w, m.Version)})
	}
	for _, e := range p.Endpoints {
		out = append(out, [2]string{w.t("endpoint ", "端口 ") + e.Label(), w.t("accepts TCP connections", "可建立 TCP 连接")})
	}
	if bw := p.Bandwidth; bw != nil {
		out = append(out, [2]string{w.t("bandwidth", "网络带宽"), ">= " + bw.MinRate.String() + "/s"})
	}
	for _, d := range p.Dependencies {
		st := "2xx"
		if d.Status != 0 {
			st = fmt.Sprint(d.Status)
		}
		out = append(out, [2]string{w.t("dependency ", "第三方依赖 ") + d.Name, w.t("answers ", "返回 ") + st})
	}
	return out
}

func versionOr(w words, c string) string {
	if c == "" {
		return w.t("answers", "可连接")
	}
	return "version " + c
}

func (b *planner) checks() {
	w, r := b.w, b.r
	s := b.d.section(4, w.t("3.2.2 Environment checks", "3.2.2 升级环境检查"))
	s.para("%s", w.t("Before anything changes, precheck runs every check each target declares (hardware, software, network, third-party dependencies) and the package's integrity; one failure stops the saga.",
		"在任何改动之前，预检查执行每个目标声明的全部检查（硬件、软件、网络、第三方依赖）以及升级包完整性校验；任一失败即终止。"))
	if b.in.DryRun != nil {
		b.measured(s)
		return
	}
	if b.in.Targets == nil {
		s.para("%s", w.t("No targets file was given: the checks each host declares are not known here (free disk at the root, at least 100MiB, is always checked).",
			"未提供目标配置文件：此处无法列出各主机声明的检查（根目录可用磁盘至少 100MiB 总会检查）。"))
		return
	}
	var rows [][]string
	for _, n := range r.Spec.Targets {
		t, ok := b.target(n)
		if !ok {
			rows = append(rows, []string{n, w.t("not in the targets file", "不在目标配置文件中"), "-"})
			continue
		}
		for _, c := range declaredChecks(w, t.Precheck) {
			rows = append(rows, []string{n, c[0], c[1]})
		}
	}
	s.table([]string{w.t("Target", "目标"), w.t("Check", "检查项"), w.t("Threshold", "阈值")}, rows)
}

func (b *planner) measured(s *Section) {
	w, d := b.w, b.in.DryRun
	s.para("%s", w.f("Measured by dry run %s (%s, %s):", "试运行 %s 的实测结果（%s，%s）：", d.ID, d.State, when(d.UpdatedAt)))
	var rows [][]string
	for _, st := range lastAttempts(d.Steps, events.Precheck) {
		for _, l := range st.Report {
			rows = append(rows, []string{st.Target, l.Name, dashed(l.Threshold), dashed(l.Value), result(w, l)})
		}
		if len(st.Report) == 0 {
			rows = append(rows, []string{st.Target, "-", "-", "-", stepText(w, st)})
		}
	}
	if len(rows) == 0 {
		s.para("%s", w.t("The dry run reported no check.", "试运行未报告任何检查。"))
	}
	s.table([]string{w.t("Target", "目标"), w.t("Check", "检查项"), w.t("Threshold", "阈值"), w.t("Measured", "实测值"), w.t("Result", "结果")}, rows)
	if d.Reason != "" {
		s.para("%s: %s", w.t("Outcome", "结论"), d.Reason)
	}
}
