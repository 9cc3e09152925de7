export { default } from "../../workers/sleep.js";
