// The examples' echo, for warming every node up between measurements.
export { default } from "../../workers/echo.js";
