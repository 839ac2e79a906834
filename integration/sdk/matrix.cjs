// The SDK matrix: real Atlassian client libraries, pointed at the gateway
// with placeholder Atlassian credentials (which they always send in
// Authorization) and the caller's gateway token in X-Atlasgate-Token.
// Run by integration/sdk_test.go; NODE_PATH names a node_modules with
// jira.js, confluence.js and bitbucket (make sdk-deps). Prints one JSON result per check and
// exits non-zero when one fails.
'use strict';
const { Version3Client } = require('jira.js');
const { Bitbucket } = require('bitbucket');
const { ConfluenceClient } = require('confluence.js');

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const token = env('SDK_GATEWAY_TOKEN');
const headers = { 'X-Atlasgate-Token': token };
const results = [];
const check = async (name, fn) => {
  try {
    results.push({ name, ok: true, detail: await fn() });
  } catch (e) {
    results.push({ name, ok: false, detail: String(e && (e.stack || e.message || e)) });
  }
};

(async () => {
  const jiraBase = env('SDK_JIRA_URL');
  const jira = new Version3Client({
    host: jiraBase,
    authentication: { basic: { email: 'placeholder@example.com', apiToken: 'placeholder' } },
    baseRequestConfig: { headers },
  });
  await check('jira.js myself', async () => {
    const me = await jira.myself.getCurrentUser();
    if (!me.accountId) throw new Error('no accountId');
    return me.accountId;
  });
  await check('jira.js issue self leads back', async () => {
    const issue = await jira.issues.getIssue({ issueIdOrKey: 'DEMO-1' });
    if (!issue.self.startsWith(jiraBase + '/')) throw new Error(`self ${issue.self} is not on ${jiraBase}`);
    return issue.self;
  });
  await check('jira.js pages the JQL search by nextPageToken', async () => {
    const keys = [];
    let nextPageToken;
    do {
      const page = await jira.issueSearch.searchForIssuesUsingJqlEnhancedSearch({ jql: 'project = DEMO', maxResults: 1, nextPageToken });
      keys.push(...page.issues.map((i) => i.key));
      nextPageToken = page.nextPageToken;
    } while (nextPageToken);
    if (keys.length < 2) throw new Error(`only ${keys.length} issue(s)`);
    return keys;
  });
  await check('jira.js downloads an attachment (303 to the media host)', async () => {
    const body = await jira.issueAttachments.getAttachmentContent({ id: env('SDK_ATTACHMENT_ID'), redirect: true });
    const text = Buffer.from(body).toString('utf8');
    if (text !== env('SDK_ATTACHMENT_CONTENT')) throw new Error(`content ${JSON.stringify(text)}`);
    return text.length + ' bytes';
  });

  const confluence = new ConfluenceClient({
    host: jiraBase,
    authentication: { basic: { email: 'placeholder@example.com', apiToken: 'placeholder' } },
    baseRequestConfig: { headers },
  });
  await check('confluence.js pages by _links.base + _links.next', async () => {
    let page = await confluence.content.getContent({ limit: 1 });
    const ids = page.results.map((p) => p.id);
    while (page._links.next) {
      // What Confluence clients do: join the base and the relative next.
      const url = page._links.base + page._links.next;
      if (!url.startsWith(jiraBase + '/wiki/')) throw new Error(`next page ${url} is not on ${jiraBase}`);
      const resp = await fetch(url, {
        headers: { ...headers, Authorization: 'Basic ' + Buffer.from('placeholder@example.com:placeholder').toString('base64') },
      });
      if (!resp.ok) throw new Error(`GET ${url}: ${resp.status}`);
      page = await resp.json();
      ids.push(...page.results.map((p) => p.id));
    }
    if (ids.length < 2) throw new Error(`only ${ids.length} page(s)`);
    return ids;
  });

  const bbBase = env('SDK_BITBUCKET_URL');
  const bitbucket = new Bitbucket({
    baseUrl: bbBase + '/2.0',
    auth: { username: 'placeholder@example.com', password: 'placeholder' },
    headers,
    notice: false,
  });
  await check('bitbucket paginates with next', async () => {
    let page = await bitbucket.repositories.list({ workspace: env('SDK_WORKSPACE'), pagelen: 1 });
    const names = page.data.values.map((r) => r.name);
    while (bitbucket.hasNextPage(page.data)) {
      if (!page.data.next.startsWith(bbBase + '/')) throw new Error(`next ${page.data.next} is not on ${bbBase}`);
      page = await bitbucket.getNextPage(page.data);
      names.push(...page.data.values.map((r) => r.name));
    }
    if (!bitbucket.hasPreviousPage(page.data)) throw new Error('last page has no previous link');
    await bitbucket.getPreviousPage(page.data);
    return names;
  });
  await check('bitbucket follows links.self.href', async () => {
    const page = await bitbucket.repositories.list({ workspace: env('SDK_WORKSPACE'), pagelen: 1 });
    const href = page.data.values[0].links.self.href;
    if (!href.startsWith(bbBase + '/')) throw new Error(`links.self.href ${href} is not on ${bbBase}`);
    return href;
  });

  for (const r of results) console.log(JSON.stringify(r));
  process.exit(results.every((r) => r.ok) ? 0 : 1);
})().catch((e) => {
  console.error(e);
  process.exit(2);
});
