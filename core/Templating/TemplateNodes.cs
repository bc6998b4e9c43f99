namespace Sio.Templating;

/// <summary>A statement of a parsed template, with the line it starts on.</summary>
internal abstract record Node(int Line);

internal sealed record TextNode(int Line, string Text) : Node(Line);

internal sealed record OutputNode(int Line, Expr Value) : Node(Line);

internal sealed record IfNode(int Line, Expr Test, List<Node> Body, List<Node> Else) : Node(Line);

/// <summary>for TARGET in ITERABLE [if CONDITION] ... [else ...] endfor.</summary>
internal sealed record ForNode(int Line, Expr Target, Expr Iterable, Expr? Condition, List<Node> Body, List<Node> Else) : Node(Line);

/// <summary>set TARGET = VALUE, or the block form (Value null) that captures the rendered Body.</summary>
internal sealed record SetNode(int Line, Expr Target, Expr? Value, List<Node> Body) : Node(Line);

/// <summary>A parameter of a macro or call block, with its default value if any.</summary>
internal sealed record Parameter(string Name, Expr? Default);

/// <summary>A macro, or the caller body of a call block (Name "caller"); Uses* say whether the body reads varargs/kwargs.</summary>
internal sealed record MacroNode(int Line, string Name, List<Parameter> Parameters, List<Node> Body, bool UsesVarargs, bool UsesKwargs) : Node(Line);

/// <summary>call(CALLER PARAMETERS) MACRO(ARGS) ... endcall.</summary>
internal sealed record CallBlockNode(int Line, CallExpr Call, MacroNode Caller) : Node(Line);

/// <summary>filter NAME[(ARGS)] ... endfilter; Filter's operand is unused.</summary>
internal sealed record FilterBlockNode(int Line, FilterExpr Filter, List<Node> Body) : Node(Line);

internal sealed record BreakNode(int Line) : Node(Line);

internal sealed record ContinueNode(int Line) : Node(Line);

/// <summary>An expression, with its line.</summary>
internal abstract record Expr(int Line);

internal sealed record LiteralExpr(int Line, TemplateValue Value) : Expr(Line);

internal sealed record NameExpr(int Line, string Name) : Expr(Line);

internal sealed record ListExpr(int Line, List<Expr> Items, bool IsTuple) : Expr(Line);

internal sealed record DictExpr(int Line, List<(Expr Key, Expr Value)> Items) : Expr(Line);

/// <summary>OBJECT.name or OBJECT.0 (Dotted), or OBJECT[KEY].</summary>
internal sealed record MemberExpr(int Line, Expr Object, Expr Key, bool Dotted) : Expr(Line);

internal sealed record SliceExpr(int Line, Expr Object, Expr? Start, Expr? Stop, Expr? Step) : Expr(Line);

internal enum ArgKind { Positional, Keyword, Spread, KeywordSpread }

/// <summary>An argument of a call: positional, name=value, *list or **dict.</summary>
internal sealed record Arg(ArgKind Kind, string? Name, Expr Value);

internal sealed record CallExpr(int Line, Expr Callee, List<Arg> Args) : Expr(Line);

internal sealed record UnaryExpr(int Line, string Operator, Expr Operand) : Expr(Line);

internal sealed record BinaryExpr(int Line, string Operator, Expr Left, Expr Right) : Expr(Line);

/// <summary>OPERAND | NAME, or OPERAND | NAME(ARGS) when Args is not null.</summary>
internal sealed record FilterExpr(int Line, Expr Operand, string Name, List<Arg>? Args) : Expr(Line);

/// <summary>OPERAND is [not] NAME, with an optional argument (NAME(ARG)).</summary>
internal sealed record TestExpr(int Line, Expr Operand, string Name, bool Negate, Expr? Argument) : Expr(Line);

/// <summary>THEN if CONDITION else ELSE; without else (Else null) it is undefined when the condition is false.</summary>
internal sealed record TernaryExpr(int Line, Expr Condition, Expr Then, Expr? Else) : Expr(Line);
