/// The cockpit API's OpenAPI 3.1 document, served at `/api/v1/openapi.json` (without a token: it
/// describes the API, and holds no account data). A test holds its paths to the routes served.
enum CockpitOpenAPI {
    static let document = #"""
        {
          "openapi": "3.1.0",
          "info": {
            "title": "TradeBus cockpit",
            "version": "1",
            "description": "The account's status, positions, trades, equity and control. Amounts are decimal strings, times ISO 8601. Every route but this document needs Authorization: Bearer with the viewer's or the operator's token; control needs the operator's."
          },
          "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
              "Problem": { "type": "object", "properties": { "error": { "type": "string" } }, "required": ["error"] },
              "ControlReply": {
                "type": "object",
                "properties": { "ok": { "type": "boolean" }, "message": { "type": "string" }, "status": { "type": "object" } },
                "required": ["ok", "message"]
              },
              "Trade": {
                "type": "object",
                "properties": {
                  "id": { "type": "string" }, "positionID": { "type": "string" }, "symbol": { "type": "string" },
                  "side": { "enum": ["LONG", "SHORT"] }, "entryTime": { "type": "string", "format": "date-time" },
                  "entryPrice": { "type": "string" }, "exitTime": { "type": "string", "format": "date-time" },
                  "exitPrice": { "type": "string" }, "quantity": { "type": "string" }, "leverage": { "type": "integer" },
                  "stopLoss": { "type": "string" }, "takeProfit": { "type": "string" }, "pnl": { "type": "string" },
                  "fees": { "type": "string" }, "funding": { "type": "string" }, "exitReason": { "type": "string" }
                }
              }
            },
            "responses": {
              "Unauthorized": { "description": "No token, or a wrong one", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Problem" } } } },
              "TooMany": { "description": "Too many wrong tokens from this address; see Retry-After" }
            }
          },
          "security": [{ "bearer": [] }],
          "paths": {
            "/api/v1/status": {
              "get": {
                "summary": "The executor's status: mode, halts, breakers, positions with stops",
                "responses": {
                  "200": { "description": "The executor's reply", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ControlReply" } } } },
                  "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooMany" }
                }
              }
            },
            "/api/v1/positions": {
              "get": {
                "summary": "Open positions",
                "responses": { "200": { "description": "Positions" }, "401": { "$ref": "#/components/responses/Unauthorized" } }
              }
            },
            "/api/v1/trades": {
              "get": {
                "summary": "Trades, filtered",
                "parameters": [
                  { "name": "symbol", "in": "query", "schema": { "type": "string" } },
                  { "name": "side", "in": "query", "schema": { "enum": ["long", "short"] } },
                  { "name": "outcome", "in": "query", "schema": { "enum": ["win", "loss"] } },
                  { "name": "since", "in": "query", "schema": { "type": "string", "format": "date-time" } }
                ],
                "responses": {
                  "200": { "description": "Trades", "content": { "application/json": { "schema": { "type": "array", "items": { "$ref": "#/components/schemas/Trade" } } } } },
                  "401": { "$ref": "#/components/responses/Unauthorized" }
                }
              }
            },
            "/api/v1/trades/{id}": {
              "get": {
                "summary": "One trade with its decision, orders and fills",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": {
                  "200": { "description": "The trade" }, "404": { "description": "No such trade" },
                  "401": { "$ref": "#/components/responses/Unauthorized" }
                }
              }
            },
            "/api/v1/decisions": {
              "get": {
                "summary": "The newest decisions first, HOLDs and refusals included, each with what the executor did (outcome: status, the refusing check and why, every risk check with its figures)",
                "parameters": [{ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 5000, "default": 200 } }],
                "responses": { "200": { "description": "Decisions" }, "400": { "description": "A bad limit" }, "401": { "$ref": "#/components/responses/Unauthorized" } }
              }
            },
            "/api/v1/alerts": {
              "get": {
                "summary": "The newest alerts first",
                "parameters": [{ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 5000, "default": 200 } }],
                "responses": { "200": { "description": "Alerts" }, "400": { "description": "A bad limit" }, "401": { "$ref": "#/components/responses/Unauthorized" } }
              }
            },
            "/api/v1/backtests": {
              "get": {
                "summary": "The newest 100 results of `tradebus backtest --save`: the report and the equity curve (at most 500 points)",
                "responses": { "200": { "description": "Backtests" }, "401": { "$ref": "#/components/responses/Unauthorized" } }
              }
            },
            "/api/v1/divergences": {
              "get": {
                "summary": "The newest 50 reports of `tradebus diff --save`: a run against the backtest of the same candles and decisions, the PnL difference by cause, and the report trade by trade",
                "responses": { "200": { "description": "Divergence reports" }, "401": { "$ref": "#/components/responses/Unauthorized" } }
              }
            },
            "/api/v1/workers": {
              "get": {
                "summary": "Each worker instance's newest heartbeat: its state, its dependencies, its figures (an analyst's LLM spend today), when it was sent and how often",
                "responses": { "200": { "description": "Heartbeats" }, "401": { "$ref": "#/components/responses/Unauthorized" } }
              }
            },
            "/api/v1/leaders": {
              "get": {
                "summary": "Each leader of COPY_LEADERS: their round trips from their recent Hyperliquid fills (trades, win rate, PnL, return, max drawdown), the same while we followed, and our trades copied from them",
                "responses": { "200": { "description": "Leader reports" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "502": { "description": "A leader could not be read at Hyperliquid" } }
              }
            },
            "/api/v1/equity": {
              "get": {
                "summary": "Equity snapshots",
                "responses": { "200": { "description": "Snapshots" }, "401": { "$ref": "#/components/responses/Unauthorized" } }
              }
            },
            "/api/v1/control/{command}": {
              "post": {
                "summary": "An operator command, over control.<account>; the executor checks and records it",
                "parameters": [
                  { "name": "command", "in": "path", "required": true, "schema": { "enum": ["halt", "resume", "flatten", "reset-breaker", "reducing"] } }
                ],
                "requestBody": {
                  "required": false,
                  "content": { "application/json": { "schema": { "type": "object", "properties": { "argument": { "type": "string" } } } } }
                },
                "responses": {
                  "200": { "description": "Done", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ControlReply" } } } },
                  "400": { "description": "A bad argument" }, "403": { "description": "A viewer's token" },
                  "404": { "description": "No such command" }, "409": { "description": "Refused by the executor" },
                  "401": { "$ref": "#/components/responses/Unauthorized" }
                }
              }
            },
            "/api/v1/openapi.json": {
              "get": { "summary": "This document", "security": [], "responses": { "200": { "description": "OpenAPI 3.1" } } }
            }
          }
        }
        """#
}
