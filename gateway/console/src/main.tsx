import { render } from "preact";
import { Api } from "./api/api";
import { Auth } from "./api/auth";
import "./styles.css";
import { App } from "./ui/app";

const api = new Api(new Auth());
render(<App api={api} />, document.getElementById("app")!);
