export { default } from "../../workers/echo.js";
