import Foundation

/// The equity curve and its drawdown, laid out once and drawn two ways: SVG (with its labels) and a
/// PNG of the same lines, for viewers that take no SVG.
public struct EquityChart: Sendable {
    static let width = 900, height = 420
    static let top = 30.0, split = 290.0, bottom = 400.0, left = 60.0, right = 880.0

    let high: Double, low: Double
    /// The deepest drawdown, a fraction of the peak.
    let deepest: Double
    /// Both lines in pixels, one point per candle (and the start).
    let equityLine: [(x: Double, y: Double)]
    let drawdownLine: [(x: Double, y: Double)]

    /// Nil with fewer than two points.
    /// The chart of `equity`, one value per point; nil with fewer than two points.
    public init?(equity: [Double]) {
        guard equity.count > 1, let low = equity.min(), let high = equity.max() else { return nil }
        self.low = low
        self.high = high
        let span = max(high - low, 1e-9)
        let last = Double(equity.count - 1)
        func x(_ index: Int) -> Double { Self.left + (Self.right - Self.left) * Double(index) / last }
        var peak = equity[0]
        var drawdowns: [Double] = []
        drawdowns.reserveCapacity(equity.count)
        for value in equity {
            peak = max(peak, value)
            drawdowns.append(peak > 0 ? (peak - value) / peak : 0)
        }
        let deepest = max(drawdowns.max() ?? 0, 1e-9)
        self.deepest = deepest
        equityLine = equity.indices.map {
            (x($0), Self.split - 10 - (Self.split - 10 - Self.top) * (equity[$0] - low) / span)
        }
        drawdownLine = drawdowns.indices.map {
            (x($0), Self.split + 20 + (Self.bottom - Self.split - 20) * drawdowns[$0] / deepest)
        }
    }

    /// The chart as a standalone SVG document, titled; `id` marks it in a page.
    public func svg(title: String, id: String? = nil) -> String {
        func points(_ line: [(x: Double, y: Double)]) -> String {
            line.map { String(format: "%.1f,%.1f", $0.x, $0.y) }.joined(separator: " ")
        }
        return """
            <svg xmlns="http://www.w3.org/2000/svg"\(id.map { " id=\"\($0)\" class=\"chart\"" } ?? "") width="\(Self.width)" height="\(Self.height)" viewBox="0 0 \(Self.width) \(Self.height)" font-family="sans-serif" font-size="12" data-points="\(equityLine.count)">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(Self.left)" y="18" font-size="14">\(Self.escaped(title))</text>
            <text x="4" y="\(Self.top + 10)">\(String(format: "%.0f", high))</text><text x="4" y="\(Self.split - 10)">\(String(format: "%.0f", low))</text>
            <polyline class="equity" fill="none" stroke="#1f77b4" stroke-width="1.5" points="\(points(equityLine))"/>
            <text x="4" y="\(Self.split + 32)">DD 0%</text><text x="4" y="\(Self.bottom)">-\(String(format: "%.1f", deepest * 100))%</text>
            <polyline class="drawdown" fill="none" stroke="#d62728" stroke-width="1" points="\(points(drawdownLine))"/>
            <line x1="\(Self.left)" y1="\(Self.split + 20)" x2="\(Self.right)" y2="\(Self.split + 20)" stroke="#ccc"/>
            </svg>
            """
    }

    /// `text` safe inside XML.
    static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// The palette: white, the equity blue, the drawdown red, the axis grey (2 bits a pixel).
    static let palette: [(UInt8, UInt8, UInt8)] = [
        (255, 255, 255), (0x1f, 0x77, 0xb4), (0xd6, 0x27, 0x28), (0xcc, 0xcc, 0xcc),
    ]

    /// The two lines and the drawdown's zero line as a PNG (no text: the SVG has the labels).
    public func png() -> [UInt8] {
        var canvas = Canvas(width: Self.width, height: Self.height)
        canvas.line(from: (Self.left, Self.split + 20), to: (Self.right, Self.split + 20), color: 3)
        canvas.polyline(drawdownLine, color: 2)
        canvas.polyline(equityLine, color: 1)
        return PNG.encode(width: Self.width, height: Self.height, palette: Self.palette, rows: canvas.rows())
    }

    /// A 2-bit indexed raster.
    struct Canvas {
        let width: Int, height: Int
        var pixels: [UInt8]

        init(width: Int, height: Int) {
            self.width = width
            self.height = height
            pixels = Array(repeating: 0, count: width * height)
        }

        mutating func plot(_ x: Int, _ y: Int, _ color: UInt8) {
            guard (0..<width).contains(x), (0..<height).contains(y) else { return }
            pixels[y * width + x] = color
        }

        /// A straight line, one pixel wide (Bresenham).
        mutating func line(from a: (Double, Double), to b: (Double, Double), color: UInt8) {
            var x0 = Int(a.0.rounded())
            var y0 = Int(a.1.rounded())
            let x1 = Int(b.0.rounded())
            let y1 = Int(b.1.rounded())
            let dx = abs(x1 - x0)
            let dy = -abs(y1 - y0)
            let sx = x0 < x1 ? 1 : -1
            let sy = y0 < y1 ? 1 : -1
            var error = dx + dy
            while true {
                plot(x0, y0, color)
                if x0 == x1 && y0 == y1 { return }
                let doubled = 2 * error
                if doubled >= dy {
                    error += dy
                    x0 += sx
                }
                if doubled <= dx {
                    error += dx
                    y0 += sy
                }
            }
        }

        mutating func polyline(_ points: [(x: Double, y: Double)], color: UInt8) {
            for (a, b) in zip(points, points.dropFirst()) { line(from: (a.x, a.y), to: (b.x, b.y), color: color) }
        }

        /// Rows of packed 2-bit pixels, four to a byte, the first in the high bits.
        func rows() -> [[UInt8]] {
            (0..<height).map { y in
                var row = [UInt8](repeating: 0, count: (width + 3) / 4)
                for x in 0..<width { row[x / 4] |= pixels[y * width + x] << UInt8(6 - 2 * (x % 4)) }
                return row
            }
        }
    }
}

/// A minimal PNG encoder: indexed colour, the zlib stream in stored (uncompressed) deflate blocks,
/// which every decoder reads; no compression library needed.
enum PNG {
    static func encode(width: Int, height: Int, palette: [(UInt8, UInt8, UInt8)], rows: [[UInt8]]) -> [UInt8] {
        var header: [UInt8] = []
        header += bigEndian(UInt32(width))
        header += bigEndian(UInt32(height))
        header += [2, 3, 0, 0, 0]  // 2 bits a pixel, indexed colour, deflate, adaptive filtering, no interlace
        var raw: [UInt8] = []
        for row in rows {
            raw.append(0)
            raw += row
        }  // filter type 0 on every row
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        png += chunk("IHDR", header)
        png += chunk("PLTE", palette.flatMap { [$0.0, $0.1, $0.2] })
        png += chunk("IDAT", zlibStored(raw))
        png += chunk("IEND", [])
        return png
    }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let typed = Array(type.utf8) + data
        return bigEndian(UInt32(data.count)) + typed + bigEndian(crc32(typed))
    }

    /// A zlib stream of stored blocks of at most 65,535 bytes, with its Adler-32.
    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let count = min(65_535, data.count - offset)
            let final: UInt8 = offset + count == data.count ? 1 : 0
            out.append(final)
            out += [UInt8(count & 0xFF), UInt8(count >> 8), UInt8(~count & 0xFF), UInt8((~count >> 8) & 0xFF)]
            out += data[offset..<offset + count]
            offset += count
        } while offset < data.count
        return out + bigEndian(adler32(data))
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }

    static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1
        var b: UInt32 = 0
        for byte in bytes {
            a = (a + UInt32(byte)) % 65_521
            b = (b + a) % 65_521
        }
        return b << 16 | a
    }
}
