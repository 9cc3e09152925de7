#!/usr/bin/env node
// The CLI lives in dist/ (built by `npm run build`, which `npm install` runs through "prepare").
import { main } from "../dist/cli.js";

main(process.argv.slice(2));
