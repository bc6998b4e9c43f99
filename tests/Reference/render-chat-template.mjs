// Renders chat-template cases with the reference renderer, @huggingface/jinja (what transformers.js uses).
//
//   node render-chat-template.mjs CASES.json [DIR]
//
// CASES.json is an array of { "name", "template", "context" }. DIR is the folder whose node_modules holds
// @huggingface/jinja (the node_modules folder itself is accepted too); without it, the package is resolved from
// the current directory. Prints a JSON array with, per case, { "name", "output" } or { "name", "error" }, in the
// order of the cases. Exits non-zero only if the cases or the package cannot be loaded.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

function fail(message) {
	process.stderr.write(`render-chat-template: ${message}\n`);
	process.exit(2);
}

async function loadTemplateClass(dirArgument) {
	let dir = path.resolve(dirArgument ?? process.cwd());
	if (path.basename(dir) === "node_modules") dir = path.dirname(dir);
	const require = createRequire(path.join(dir, "package.json"));
	let resolved;
	try {
		resolved = require.resolve("@huggingface/jinja");
	} catch (e) {
		fail(`cannot find @huggingface/jinja from ${dir}: ${e.message}`);
	}
	const module = await import(pathToFileURL(resolved).href);
	const Template = module.Template ?? module.default?.Template;
	if (typeof Template !== "function") fail(`${resolved} does not export Template`);
	return Template;
}

const [casesPath, dirArgument] = process.argv.slice(2);
if (!casesPath) fail("usage: node render-chat-template.mjs CASES.json [DIR]");

let cases;
try {
	cases = JSON.parse(readFileSync(casesPath, "utf8"));
} catch (e) {
	fail(`cannot read ${casesPath}: ${e.message}`);
}
if (!Array.isArray(cases)) fail(`${casesPath} must hold a JSON array`);

const Template = await loadTemplateClass(dirArgument);
const results = cases.map(({ name, template, context }) => {
	try {
		return { name, output: new Template(template).render(context ?? {}) };
	} catch (e) {
		return { name, error: String(e?.message ?? e) };
	}
});
process.stdout.write(JSON.stringify(results, null, 2) + "\n");
