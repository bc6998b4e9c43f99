using System.Globalization;
using System.Runtime.CompilerServices;

namespace Sio.Templating;

/// <summary>
/// Builds the statement tree from tokens with the reference parser's grammar and precedence (loosest first):
/// a if b else c; or; and; not; comparisons and (not) in; + - ~; * / // %; **; is; |; unary - +; calls and members.
/// </summary>
internal sealed class TemplateParser
{
    private const int MaxDepth = 200;
    private readonly List<Token> tokens;
    private readonly Token end;
    private int current, depth, varargsUses, kwargsUses;

    private TemplateParser(List<Token> tokens)
    {
        this.tokens = tokens;
        end = new Token(TokenKind.End, "", tokens.Count > 0 ? tokens[^1].Line : 1);
    }

    public static List<Node> Parse(List<Token> tokens)
    {
        var parser = new TemplateParser(tokens);
        var body = new List<Node>();
        while (!parser.Is(TokenKind.End)) parser.AddAny(body);
        return body;
    }

    // ---- token helpers

    private Token Peek(int k = 0) => current + k < tokens.Count ? tokens[current + k] : end;
    private bool Is(TokenKind kind) => Peek().Kind == kind;
    private bool IsName(string name, int k = 0) => Peek(k).Kind == TokenKind.Name && Peek(k).Text == name;
    private bool IsStatement(string[] names) =>
        Is(TokenKind.OpenStatement) && Peek(1).Kind == TokenKind.Name && names.Contains(Peek(1).Text);

    private Token Next() => Is(TokenKind.End) ? throw Unexpected(end) : tokens[current++];

    private static TemplateError Error(Token at, string message) => new(message, at.Line);
    private static TemplateError Unexpected(Token t) => Error(t, $"unexpected {t.Describe()}");

    private Token Expect(TokenKind kind, string what)
    {
        var t = Peek();
        if (t.Kind != kind) throw Error(t, $"expected {what}, found {t.Describe()}");
        current++;
        return t;
    }

    private void ExpectEndTag(string name)
    {
        Expect(TokenKind.OpenStatement, "'{%'");
        if (!IsName(name)) throw Error(Peek(), $"expected '{name}', found {Peek().Describe()}");
        current++;
        Expect(TokenKind.CloseStatement, "'%}'");
    }

    private T Nested<T>(Func<T> parse)
    {
        if (depth >= MaxDepth || !RuntimeHelpers.TryEnsureSufficientExecutionStack()) throw Error(Peek(), "template nesting is too deep");
        depth++;
        try { return parse(); }
        finally { depth--; }
    }

    // ---- statements

    private void AddAny(List<Node> body)
    {
        var t = Peek();
        switch (t.Kind)
        {
            case TokenKind.Comment: current++; break;
            case TokenKind.Text: current++; body.Add(new TextNode(t.Line, t.Text)); break;
            case TokenKind.OpenStatement: body.Add(Nested(ParseStatement)); break;
            case TokenKind.OpenExpression:
                current++;
                body.Add(new OutputNode(t.Line, ParseExpression()));
                Expect(TokenKind.CloseExpression, "'}}'");
                break;
            default: throw Unexpected(t);
        }
    }

    private List<Node> ParseBody(string opener, string closer, params string[] terminators)
    {
        var body = new List<Node>();
        while (!IsStatement(terminators))
        {
            if (Is(TokenKind.End)) throw Error(end, $"'{opener}' is not closed by {{% {closer} %}}");
            AddAny(body);
        }
        return body;
    }

    private Node ParseStatement()
    {
        var open = Next();
        var name = Peek();
        if (name.Kind != TokenKind.Name) throw Error(name, $"expected a statement name, found {name.Describe()}");
        current++;
        int line = open.Line;
        switch (name.Text)
        {
            case "set": return ParseSet(line);
            case "if": { var node = ParseIf(line); ExpectEndTag("endif"); return node; }
            case "for": { var node = ParseFor(line); ExpectEndTag("endfor"); return node; }
            case "macro": { var node = ParseMacro(line); ExpectEndTag("endmacro"); return node; }
            case "call": return ParseCallBlock(line);
            case "filter": return ParseFilterBlock(line);
            case "break": Expect(TokenKind.CloseStatement, "'%}'"); return new BreakNode(line);
            case "continue": Expect(TokenKind.CloseStatement, "'%}'"); return new ContinueNode(line);
            default: throw Error(name, $"unsupported statement '{name.Text}'");
        }
    }

    private SetNode ParseSet(int line)
    {
        var target = ParseExpressionSequence(primary: false);
        if (!IsAssignable(target)) throw Error(Peek(), "cannot assign to this expression");
        if (Is(TokenKind.Equals))
        {
            current++;
            var value = ParseExpressionSequence(primary: false);
            Expect(TokenKind.CloseStatement, "'%}'");
            return new SetNode(line, target, value, []);
        }
        Expect(TokenKind.CloseStatement, "'%}'");
        var body = ParseBody("set", "endset", "endset");
        ExpectEndTag("endset");
        return new SetNode(line, target, null, body);
    }

    private static bool IsAssignable(Expr target) => target switch
    {
        NameExpr => true,
        ListExpr { IsTuple: true } tuple => tuple.Items.All(i => i is NameExpr),
        MemberExpr { Dotted: true, Key: LiteralExpr { Value: StringValue } } => true,
        _ => false,
    };

    private IfNode ParseIf(int line)
    {
        var test = ParseExpression();
        Expect(TokenKind.CloseStatement, "'%}'");
        var body = ParseBody("if", "endif", "elif", "else", "endif");
        List<Node> alternate = [];
        if (IsStatement(["elif"]))
        {
            int elifLine = Peek().Line;
            current += 2;
            alternate.Add(ParseIf(elifLine));
        }
        else if (IsStatement(["else"]))
        {
            current += 2;
            Expect(TokenKind.CloseStatement, "'%}'");
            alternate = ParseBody("if", "endif", "endif");
        }
        return new IfNode(line, test, body, alternate);
    }

    private ForNode ParseFor(int line)
    {
        var target = ParseExpressionSequence(primary: true);
        if (target is not NameExpr && !(target is ListExpr { IsTuple: true } t && t.Items.All(i => i is NameExpr)))
            throw Error(Peek(), "expected a name or names for the loop variable");
        if (!IsName("in")) throw Error(Peek(), $"expected 'in', found {Peek().Describe()}");
        current++;
        var iterable = ParseExpression();
        Expr? condition = null;
        if (iterable is TernaryExpr { Else: null } select) (iterable, condition) = (select.Then, select.Condition);
        Expect(TokenKind.CloseStatement, "'%}'");
        var body = ParseBody("for", "endfor", "endfor", "else");
        List<Node> alternate = [];
        if (IsStatement(["else"]))
        {
            current += 2;
            Expect(TokenKind.CloseStatement, "'%}'");
            alternate = ParseBody("for", "endfor", "endfor");
        }
        return new ForNode(line, target, iterable, condition, body, alternate);
    }

    private MacroNode ParseMacro(int line)
    {
        int varargsBefore = varargsUses, kwargsBefore = kwargsUses;
        var name = Peek();
        if (name.Kind != TokenKind.Name) throw Error(name, "expected a macro name");
        current++;
        var parameters = ParseParameters();
        Expect(TokenKind.CloseStatement, "'%}'");
        var body = ParseBody("macro", "endmacro", "endmacro");
        return NewMacro(line, name.Text, parameters, body, varargsBefore, kwargsBefore);
    }

    /// <summary>A macro node that notes whether its defaults or body read varargs or kwargs.</summary>
    private MacroNode NewMacro(int line, string name, List<Parameter> parameters, List<Node> body, int varargsBefore, int kwargsBefore)
    {
        bool usesVarargs = varargsUses > varargsBefore && parameters.All(p => p.Name != "varargs");
        bool usesKwargs = kwargsUses > kwargsBefore && parameters.All(p => p.Name != "kwargs");
        return new MacroNode(line, name, parameters, body, usesVarargs, usesKwargs);
    }

    private CallBlockNode ParseCallBlock(int line)
    {
        int varargsBefore = varargsUses, kwargsBefore = kwargsUses;
        var parameters = Is(TokenKind.LParen) ? ParseParameters() : [];
        var callee = Peek();
        if (callee.Kind != TokenKind.Name) throw Error(callee, "expected a macro name after 'call'");
        current++;
        var call = new CallExpr(callee.Line, new NameExpr(callee.Line, callee.Text), ParseArgs(parameters: false));
        Expect(TokenKind.CloseStatement, "'%}'");
        var body = ParseBody("call", "endcall", "endcall");
        ExpectEndTag("endcall");
        return new CallBlockNode(line, call, NewMacro(line, "caller", parameters, body, varargsBefore, kwargsBefore));
    }

    private FilterBlockNode ParseFilterBlock(int line)
    {
        var nameToken = Peek();
        if (nameToken.Kind != TokenKind.Name) throw Error(nameToken, "expected a filter name");
        current++;
        var args = Is(TokenKind.LParen) ? ParseArgs(parameters: false) : null;
        Expect(TokenKind.CloseStatement, "'%}'");
        var body = ParseBody("filter", "endfilter", "endfilter");
        ExpectEndTag("endfilter");
        var filter = new FilterExpr(line, new LiteralExpr(line, UndefinedValue.Instance), nameToken.Text, args);
        return new FilterBlockNode(line, filter, body);
    }

    private List<Parameter> ParseParameters()
    {
        var result = new List<Parameter>();
        foreach (var arg in ParseArgs(parameters: true))
        {
            string name = arg.Name ?? ((NameExpr)arg.Value).Name;
            if (result.Any(p => p.Name == name)) throw Error(Peek(), $"duplicate parameter '{name}'");
            result.Add(new Parameter(name, arg.Kind == ArgKind.Keyword ? arg.Value : null));
        }
        return result;
    }

    private List<Arg> ParseArgs(bool parameters)
    {
        Expect(TokenKind.LParen, "'('");
        var args = new List<Arg>();
        bool sawKeyword = false, sawSpread = false;
        while (!Is(TokenKind.RParen))
        {
            var at = Peek();
            bool keywordSpread = Is(TokenKind.Power), spread = Is(TokenKind.Multiplicative) && at.Text == "*";
            if (parameters && (keywordSpread || spread)) throw Error(at, "argument unpacking is not allowed in parameters");
            if (keywordSpread)
            {
                current++;
                args.Add(new Arg(ArgKind.KeywordSpread, null, ParseExpression()));
                if (Is(TokenKind.Comma)) current++;
                if (!Is(TokenKind.RParen)) throw Error(Peek(), "'**' must be applied to the final argument");
                break;
            }
            var arg = spread ? ParseSpread(ref sawSpread) : ParseArg(parameters, ref sawKeyword, sawSpread);
            args.Add(arg);
            if (Is(TokenKind.Comma)) current++;
        }
        current++;
        return args;
    }

    private Arg ParseSpread(ref bool sawSpread)
    {
        if (sawSpread) throw Error(Peek(), "only one '*' argument is allowed");
        sawSpread = true;
        current++;
        return new Arg(ArgKind.Spread, null, ParseExpression());
    }

    private Arg ParseArg(bool parameters, ref bool sawKeyword, bool sawSpread)
    {
        var at = Peek();
        var value = ParseExpression();
        Arg arg = new(ArgKind.Positional, null, value);
        if (Is(TokenKind.Equals))
        {
            current++;
            if (value is not NameExpr name) throw Error(at, "expected a name before '='");
            arg = new Arg(ArgKind.Keyword, name.Name, ParseExpression());
        }
        if (parameters && arg.Kind == ArgKind.Positional && value is not NameExpr) throw Error(at, "expected a parameter name");
        if (arg.Kind == ArgKind.Keyword) sawKeyword = true;
        else if (sawKeyword) throw Error(at, parameters ? "parameter without default follows one with a default" : "positional argument follows keyword argument");
        else if (sawSpread) throw Error(at, "positional argument follows '*' argument");
        return arg;
    }

    // ---- expressions

    private Expr ParseExpressionSequence(bool primary)
    {
        var first = primary ? ParsePrimary() : ParseExpression();
        if (!Is(TokenKind.Comma)) return first;
        var items = new List<Expr> { first };
        do
        {
            current++;
            items.Add(primary ? ParsePrimary() : ParseExpression());
        } while (Is(TokenKind.Comma));
        return new ListExpr(first.Line, items, IsTuple: true);
    }

    private Expr ParseExpression() => Nested(ParseConditional);

    private Expr ParseConditional()
    {
        var then = ParseOr();
        if (!IsName("if")) return then;
        int line = Next().Line;
        var condition = ParseOr();
        if (!IsName("else")) return new TernaryExpr(line, condition, then, null);
        current++;
        return new TernaryExpr(line, condition, then, ParseConditional());
    }

    private Expr ParseOr() => ParseLogical("or", ParseAnd);

    private Expr ParseAnd() => ParseLogical("and", ParseNot);

    private Expr ParseLogical(string op, Func<Expr> operand)
    {
        var left = operand();
        while (IsName(op))
        {
            int line = Next().Line;
            left = new BinaryExpr(line, op, left, operand());
        }
        return left;
    }

    private Expr ParseNot()
    {
        if (!IsName("not")) return ParseComparison();
        int line = Next().Line;
        return new UnaryExpr(line, "not", Nested(ParseNot));
    }

    private Expr ParseComparison()
    {
        var left = ParseBinary(TokenKind.Additive, ParseMultiplicative);
        while (true)
        {
            var t = Peek();
            string op;
            if (IsName("not") && IsName("in", 1)) { op = "not in"; current += 2; }
            else if (IsName("in")) { op = "in"; current++; }
            else if (t.Kind == TokenKind.Comparison) { op = t.Text; current++; }
            else return left;
            left = new BinaryExpr(t.Line, op, left, ParseBinary(TokenKind.Additive, ParseMultiplicative));
        }
    }

    private Expr ParseMultiplicative() => ParseBinary(TokenKind.Multiplicative, () => ParseBinary(TokenKind.Power, ParseTest));

    private Expr ParseBinary(TokenKind kind, Func<Expr> operand)
    {
        var left = operand();
        while (Is(kind))
        {
            var t = Next();
            left = new BinaryExpr(t.Line, t.Text, left, operand());
        }
        return left;
    }

    private Expr ParseTest()
    {
        var operand = ParseFilter();
        while (IsName("is"))
        {
            int line = Next().Line;
            bool negate = IsName("not");
            if (negate) current++;
            var name = Peek();
            if (name.Kind != TokenKind.Name) throw Error(name, "expected a test name after 'is'");
            current++;
            Expr? argument = null;
            if (Is(TokenKind.LParen))
            {
                var args = ParseArgs(parameters: false);
                if (args.Count != 1 || args[0].Kind != ArgKind.Positional) throw Error(name, $"test '{name.Text}' takes one argument");
                argument = args[0].Value;
            }
            operand = new TestExpr(line, operand, name.Text, negate, argument);
        }
        return operand;
    }

    private Expr ParseFilter()
    {
        var operand = ParseUnarySign();
        while (Is(TokenKind.Pipe))
        {
            int line = Next().Line;
            var name = Peek();
            if (name.Kind != TokenKind.Name) throw Error(name, "expected a filter name after '|'");
            current++;
            var args = Is(TokenKind.LParen) ? ParseArgs(parameters: false) : null;
            operand = new FilterExpr(line, operand, name.Text, args);
        }
        return operand;
    }

    private Expr ParseUnarySign()
    {
        var t = Peek();
        if (t.Kind is TokenKind.Unary or TokenKind.Additive && t.Text is "-" or "+")
        {
            current++;
            return new UnaryExpr(t.Line, t.Text, Nested(ParseUnarySign));
        }
        var member = ParseMember(ParsePrimary());
        return Is(TokenKind.LParen) ? ParseCall(member) : member;
    }

    private Expr ParseCall(Expr callee)
    {
        Expr call = ParseMember(new CallExpr(callee.Line, callee, ParseArgs(parameters: false)));
        return Is(TokenKind.LParen) ? Nested(() => ParseCall(call)) : call;
    }

    private Expr ParseMember(Expr target)
    {
        while (Is(TokenKind.Dot) || Is(TokenKind.LBracket))
        {
            var t = Next();
            if (t.Kind == TokenKind.LBracket)
            {
                target = ParseSubscript(target, t.Line);
                Expect(TokenKind.RBracket, "']'");
                continue;
            }
            var key = Next();
            TemplateValue name = key.Kind switch
            {
                TokenKind.Name => new StringValue(key.Text),
                TokenKind.Number when !key.Text.Contains('.') => ParseNumber(key.Text),
                _ => throw Error(key, "expected a name or integer after '.'"),
            };
            target = new MemberExpr(t.Line, target, new LiteralExpr(key.Line, name), Dotted: true);
        }
        return target;
    }

    private Expr ParseSubscript(Expr target, int line)
    {
        var parts = new List<Expr?>();
        bool isSlice = false;
        while (!Is(TokenKind.RBracket))
        {
            if (Is(TokenKind.Colon)) { parts.Add(null); current++; isSlice = true; continue; }
            parts.Add(ParseExpression());
            if (Is(TokenKind.Colon)) { current++; isSlice = true; }
            else if (!Is(TokenKind.RBracket)) throw Error(Peek(), $"expected ']', found {Peek().Describe()}");
        }
        if (parts.Count == 0) throw Error(Peek(), "expected an index or slice");
        if (!isSlice) return new MemberExpr(line, target, parts[0]!, Dotted: false);
        if (parts.Count > 3) throw Error(Peek(), "a slice has at most three parts");
        return new SliceExpr(line, target, parts[0], parts.ElementAtOrDefault(1), parts.ElementAtOrDefault(2));
    }

    private static NumberValue ParseNumber(string text)
    {
        double value = double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
        return new NumberValue(value, isFloat: text.Contains('.'));
    }

    private Expr ParsePrimary()
    {
        var t = Next();
        switch (t.Kind)
        {
            case TokenKind.Number: return new LiteralExpr(t.Line, ParseNumber(t.Text));
            case TokenKind.String:
                string text = t.Text;
                while (Is(TokenKind.String)) text += Next().Text;
                return new LiteralExpr(t.Line, new StringValue(text));
            case TokenKind.Name:
                if (t.Text == "varargs") varargsUses++;
                if (t.Text == "kwargs") kwargsUses++;
                return new NameExpr(t.Line, t.Text);
            case TokenKind.LParen:
                var inner = ParseExpressionSequence(primary: false);
                Expect(TokenKind.RParen, "')'");
                return inner;
            case TokenKind.LBracket: return ParseList(t.Line);
            case TokenKind.LBrace: return ParseDict(t.Line);
            default: throw Unexpected(t);
        }
    }

    private ListExpr ParseList(int line)
    {
        var items = new List<Expr>();
        while (!Is(TokenKind.RBracket))
        {
            items.Add(ParseExpression());
            if (Is(TokenKind.Comma)) current++;
        }
        current++;
        return new ListExpr(line, items, IsTuple: false);
    }

    private DictExpr ParseDict(int line)
    {
        var items = new List<(Expr, Expr)>();
        while (!Is(TokenKind.RBrace))
        {
            var key = ParseExpression();
            Expect(TokenKind.Colon, "':'");
            items.Add((key, ParseExpression()));
            if (Is(TokenKind.Comma)) current++;
        }
        current++;
        return new DictExpr(line, items);
    }
}
