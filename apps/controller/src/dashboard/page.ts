/**
 * The dashboard's HTML and CSS. They live in the compiled controller (not in
 * loose files) so `tsc -b` is the only build step and every replica, in a
 * container or not, serves the same page. The script is `ui/app.ts`, compiled
 * to `dist/ui/app.js` by its own DOM-typed project.
 */

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Berth</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/style.css">
<script type="module" src="/dashboard/app.js"></script>
</head>
<body>
<header>
  <h1>Berth</h1>
  <span id="conn" class="badge conn-connecting" data-testid="connection">connecting…</span>
  <span class="muted">served by <b id="self" data-testid="self">?</b></span>
  <nav><a href="/docs">API docs</a> · <a href="/openapi.json">OpenAPI</a></nav>
  <span id="who" class="who" data-testid="who" hidden>
    <b id="who-name" data-testid="who-name"></b>
    <span id="who-role" class="badge role" data-testid="role"></span>
    <button type="button" id="logout" data-testid="logout">Log out</button>
  </span>
</header>
<div id="insecure" class="insecure" role="alert" data-testid="insecure" hidden>
  Authentication is off: this replica was started with <code>--insecure-no-auth</code>, so anyone who can reach it can do anything, including running commands on the nodes.
</div>
<section id="login" class="login card" data-testid="login" hidden>
  <form id="login-form">
    <h2>Log in</h2>
    <p class="muted">This controller needs an API token: the admin token (its <code>--admin-token-file</code>) or one an admin made with <code>POST /v1/tokens</code>.</p>
    <label>token <input id="login-token" name="token" type="password" autocomplete="current-password" required size="50" data-testid="login-token"></label>
    <button type="submit" data-testid="login-submit">Log in</button>
    <p id="login-error" class="login-error" role="alert" data-testid="login-error" hidden></p>
  </form>
</section>
<div id="error" class="error" role="alert" data-testid="error" hidden>
  <span id="error-text"></span><button type="button" id="error-close" aria-label="dismiss">×</button>
</div>
<main id="app" hidden>
  <section id="cluster" class="card">
    <h2>Control plane</h2>
    <div class="leader">
      <div><span class="label">leader</span> <b id="leader-id" data-testid="leader-id">—</b></div>
      <div><span class="label">term</span> <span id="leader-term" data-testid="leader-term">—</span></div>
      <div><span class="label">since</span> <span id="leader-since">—</span></div>
    </div>
    <ul id="replicas" class="replicas" data-testid="replicas"></ul>
    <div id="totals" class="muted"></div>
  </section>

  <section id="events-card" class="card">
    <h2>Events</h2>
    <ol id="events" class="events" data-testid="events"></ol>
  </section>
  <section id="nodes-card" class="card">
    <h2>Nodes <span id="node-count" class="muted"></span></h2>
    <table>
      <thead><tr><th>name</th><th>status</th><th>runtime</th><th>cpu <small class="muted">allocated / used of capacity</small></th><th>memory</th><th>pods</th><th></th></tr></thead>
      <tbody id="nodes"></tbody>
    </table>
    <form id="add-node" class="inline">
      <b>Add node</b>
      <label>cpu <input name="cpu" type="number" min="0.1" step="0.1" value="2" required></label>
      <label>memory MiB <input name="memoryMiB" type="number" min="64" step="64" value="2048"></label>
      <label>runtime <select name="runtime"><option>simulated</option><option>process</option></select></label>
      <button type="submit">Add</button>
    </form>
  </section>

  <section id="pods-card" class="card">
    <h2>Pods <span id="pod-count" class="muted"></span></h2>
    <form id="run-pod" class="inline" data-testid="run-pod">
      <b>Run pod</b>
      <label>name <input name="name" required placeholder="web-1"></label>
      <label>command <input name="command" required placeholder="sleep 3600" size="22"></label>
      <label>cpu <input name="cpu" type="number" min="0.01" step="0.01" value="0.1" required></label>
      <label>memory MiB <input name="memoryMiB" type="number" min="1" step="1" value="64"></label>
      <button type="submit">Run</button>
    </form>
    <table>
      <thead><tr><th>name</th><th>phase</th><th>desired</th><th>node</th><th>restarts</th><th>age</th><th>reason</th><th></th></tr></thead>
      <tbody id="pods"></tbody>
    </table>
  </section>

  <section id="services-card" class="card">
    <h2>Services <span id="service-count" class="muted"></span></h2>
    <table>
      <thead><tr><th>name</th><th>ready</th><th>up-to-date</th><th>port</th><th>runs</th><th>endpoints <small class="muted">as this replica routes</small></th><th></th></tr></thead>
      <tbody id="services" data-testid="services"></tbody>
    </table>
  </section>

  <section id="jobs-card" class="card">
    <h2>Recent jobs <span id="job-count" class="muted"></span></h2>
    <table>
      <thead><tr><th>id</th><th>service</th><th>request</th><th>status</th><th>attempts</th><th>code</th><th>age</th><th>reason</th></tr></thead>
      <tbody id="jobs" data-testid="jobs"></tbody>
    </table>
  </section>

</main>
</body>
</html>
`;

export const DASHBOARD_CSS = `
:root { --bg:#f6f7f9; --card:#fff; --fg:#1d2430; --muted:#6b7380; --line:#e3e6eb; --ok:#1f9d55; --warn:#d98f00; --bad:#d64545; --info:#2f6fdb; --alloc:#9cc0f5; --used:#2f6fdb; }
* { box-sizing: border-box; }
[hidden] { display:none !important; }
body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--fg); }
header { display:flex; align-items:center; gap:16px; padding:10px 20px; background:#1d2430; color:#fff; }
header h1 { margin:0; font-size:20px; letter-spacing:.5px; }
header .muted { color:#aab2bf; }
header nav { margin-left:auto; }
header a { color:#cfe0ff; }
main { display:grid; grid-template-columns: 1fr 1fr; gap:14px; padding:14px 20px; }
#nodes-card, #pods-card, #services-card, #jobs-card { grid-column: 1 / -1; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; overflow-x:auto; }
h2 { margin:0 0 8px; font-size:15px; }
table { width:100%; border-collapse:collapse; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:middle; white-space:nowrap; }
th { font-weight:600; color:var(--muted); font-size:12px; }
td.reason { white-space:normal; color:var(--muted); max-width:380px; }
.muted { color:var(--muted); }
.label { color:var(--muted); font-size:12px; text-transform:uppercase; }
.leader { display:flex; gap:24px; font-size:16px; margin-bottom:8px; }
.replicas { list-style:none; margin:0 0 6px; padding:0; display:flex; gap:8px; flex-wrap:wrap; }
.replicas li { border:1px solid var(--line); border-radius:6px; padding:3px 8px; }
.replicas li.is-leader { border-color:var(--ok); background:#eaf7ef; }
.replicas li.is-self { font-weight:600; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; color:#fff; background:var(--muted); }
.s-Ready, .p-Running, .conn-live { background:var(--ok); }
.s-NotReady, .p-Pending, .p-Scheduled, .p-Starting, .p-Stopping, .p-Paused, .conn-connecting { background:var(--warn); }
.s-Dead, .p-Failed, .conn-down, .conn-stale { background:var(--bad); }
.p-Stopped, .p-Succeeded { background:#7d8794; }
.j-Succeeded { background:var(--ok); }
.j-Queued { background:var(--warn); }
.j-Running { background:var(--info); }
.j-Failed, .j-TimedOut { background:var(--bad); }
.j-Canceled { background:#7d8794; }
.ep { display:inline-block; padding:0 6px; border-radius:4px; font-size:12px; border:1px solid var(--line); }
.ep-ready { border-color:var(--ok); background:#eaf7ef; }
.ep-unready { border-color:var(--warn); background:#fff6e0; }
.ep-ejected { border-color:var(--bad); background:#fdecec; }
td.endpoints { white-space:normal; }
.mono { font-family:ui-monospace, monospace; font-size:12px; }
.flag { background:#7a5cc7; margin-left:4px; }
.bar { position:relative; width:170px; height:10px; background:#edf0f4; border-radius:5px; overflow:hidden; display:inline-block; vertical-align:middle; }
.bar .alloc { position:absolute; left:0; top:0; bottom:0; background:var(--alloc); }
.bar .used { position:absolute; left:0; top:3px; height:4px; background:var(--used); }
.bar-text { font-size:12px; color:var(--muted); margin-left:6px; }
button { font:inherit; font-size:12px; padding:2px 8px; border:1px solid #c9ced6; border-radius:5px; background:#fff; cursor:pointer; }
button:hover { background:#f0f3f8; }
button.danger { color:var(--bad); }
form.inline { display:flex; gap:10px; align-items:center; flex-wrap:wrap; margin:8px 0; }
form.inline input, form.inline select { font:inherit; padding:2px 4px; }
form.inline input[type=number] { width:80px; }
form.inline button[type=submit] { background:var(--info); color:#fff; border-color:var(--info); padding:3px 12px; }
.error { display:flex; justify-content:space-between; align-items:center; margin:10px 20px 0; padding:8px 12px; background:#fdecec; border:1px solid var(--bad); color:#8a1f1f; border-radius:6px; }
.error button { border:none; background:none; font-size:18px; }
.events { list-style:none; margin:0; padding:0; max-height:190px; overflow-y:auto; font-size:13px; }
.events li { padding:3px 0; border-bottom:1px solid var(--line); }
.events .t { color:var(--muted); font-variant-numeric:tabular-nums; margin-right:6px; }
.events .r { font-weight:600; margin-right:6px; }
.events .Warning .r { color:var(--bad); }
.who { display:flex; align-items:center; gap:8px; }
.role { background:var(--info); }
.insecure { margin:10px 20px 0; padding:10px 14px; background:var(--bad); color:#fff; font-weight:600; border-radius:6px; }
.insecure code { background:rgba(255,255,255,.2); padding:0 4px; border-radius:3px; }
.login { max-width:560px; margin:40px auto; }
.login form { display:flex; flex-direction:column; gap:10px; }
.login input { font:inherit; padding:4px 6px; width:100%; }
.login button[type=submit] { align-self:flex-start; background:var(--info); color:#fff; border-color:var(--info); padding:4px 14px; font-size:14px; }
.login-error { margin:0; color:#8a1f1f; }
.conn-out { background:var(--muted); }
@media (max-width: 900px) { main { grid-template-columns: 1fr; } }
`;
