// The examples' echo.
export { default } from "../../workers/echo.js";
