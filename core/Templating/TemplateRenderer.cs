using System.Runtime.CompilerServices;
using System.Text;

namespace Sio.Templating;

/// <summary>
/// Runs a parsed template. Output goes to one StringBuilder; a loop iteration cut short by break or continue drops
/// what it wrote, as the reference does. Errors are TemplateErrors carrying the innermost known line.
/// </summary>
internal sealed class TemplateRenderer
{
    private const int MaxCallDepth = 100, MaxEvalDepth = 500;
    private int callDepth, evalDepth;

    private enum Flow { Normal, Break, Continue }

    public string Render(List<Node> body, Scope globals) => RenderIsolated(body, globals);

    /// <summary>Renders a body of its own (the template, a macro, a set or filter block).</summary>
    private string RenderIsolated(List<Node> body, Scope scope)
    {
        var sb = new StringBuilder();
        if (ExecBlock(body, scope, sb) != Flow.Normal) throw new TemplateError("'break' or 'continue' outside a loop");
        return sb.ToString();
    }

    private Flow ExecBlock(List<Node> body, Scope scope, StringBuilder sb)
    {
        foreach (var node in body)
        {
            var flow = Exec(node, scope, sb);
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    private Flow Exec(Node node, Scope scope, StringBuilder sb)
    {
        if (!RuntimeHelpers.TryEnsureSufficientExecutionStack()) throw new TemplateError("statements or macro calls nest too deeply", node.Line);
        try
        {
            return ExecCore(node, scope, sb);
        }
        catch (TemplateError e) when (e.SetLineIfUnknown(node.Line))
        {
            throw;
        }
    }

    private Flow ExecCore(Node node, Scope scope, StringBuilder sb)
    {
        switch (node)
        {
            case TextNode t: sb.Append(t.Text); break;
            case OutputNode o: Write(sb, Eval(o.Value, scope)); break;
            case IfNode i: return ExecBlock(Js.Truthy(Eval(i.Test, scope)) ? i.Body : i.Else, scope, sb);
            case ForNode f: return ExecFor(f, scope, sb);
            case SetNode s: Assign(s.Target, s.Value is null ? new StringValue(RenderIsolated(s.Body, scope)) : Eval(s.Value, scope), scope); break;
            case MacroNode m: scope.Set(m.Name, MakeMacro(m, lexicalScope: null)); break;
            case CallBlockNode c: Write(sb, ExecCallBlock(c, scope)); break;
            case FilterBlockNode f: Write(sb, TemplateFilters.Apply(this, new StringValue(RenderIsolated(f.Body, scope)), f.Filter, scope)); break;
            case BreakNode: return Flow.Break;
            case ContinueNode: return Flow.Continue;
        }
        return Flow.Normal;
    }

    /// <summary>Prints a value the way {{ }} does: none and undefined print nothing.</summary>
    private static void Write(StringBuilder sb, TemplateValue value)
    {
        if (value is not (NoneValue or UndefinedValue)) sb.Append(Js.Display(value));
    }

    private void Assign(Expr target, TemplateValue value, Scope scope)
    {
        switch (target)
        {
            case NameExpr name:
                scope.Set(name.Name, value);
                break;
            case ListExpr tuple:
                if (value is not ListValue list) throw new TemplateError($"cannot unpack {value.Described}");
                CheckCount(tuple.Items.Count, list.Items.Count);
                for (int i = 0; i < tuple.Items.Count; i++) scope.Set(((NameExpr)tuple.Items[i]).Name, list.Items[i]);
                break;
            case MemberExpr member:
                var obj = Eval(member.Object, scope);
                if (obj is not DictValue { Kind: DictKind.Namespace } ns) throw new TemplateError($"cannot set an attribute of {obj.Described} (only of a namespace)");
                ns.Map[((StringValue)((LiteralExpr)member.Key).Value).Value] = value;
                break;
        }
    }

    private static void CheckCount(int names, int values)
    {
        if (names != values) throw new TemplateError($"too {(names > values ? "few" : "many")} values to unpack (expected {names})");
    }

    private Flow ExecFor(ForNode f, Scope scope, StringBuilder sb)
    {
        var loopScope = new Scope(scope);
        var iterable = Eval(f.Iterable, loopScope);
        List<TemplateValue> source = iterable switch
        {
            ListValue l => l.Items,
            DictValue { IsObject: true } d => d.Map.Keys.Select(k => (TemplateValue)new StringValue(k)).ToList(),
            _ => throw new TemplateError($"cannot iterate over {iterable.Described}", f.Iterable.Line),
        };
        var items = new List<TemplateValue>(source.Count);
        var scratch = new Scope(null);
        foreach (var item in source)
        {
            Bind(f.Target, item, scratch);
            if (f.Condition is null || Selected(f, item, loopScope)) items.Add(item);
        }
        bool ranBody = false;
        for (int i = 0; i < items.Count; i++)
        {
            loopScope.Set("loop", LoopInfo(items, i));
            Bind(f.Target, items[i], loopScope);
            int mark = sb.Length;
            var flow = ExecBlock(f.Body, loopScope, sb);
            if (flow == Flow.Normal) { ranBody = true; continue; }
            sb.Length = mark;
            if (flow == Flow.Break) break;
        }
        return ranBody ? Flow.Normal : ExecBlock(f.Else, loopScope, sb);
    }

    private bool Selected(ForNode f, TemplateValue item, Scope loopScope)
    {
        var testScope = new Scope(loopScope);
        Bind(f.Target, item, testScope);
        return Js.Truthy(Eval(f.Condition!, testScope));
    }

    private static void Bind(Expr target, TemplateValue item, Scope scope)
    {
        if (target is NameExpr name)
        {
            scope.Set(name.Name, item);
            return;
        }
        var names = ((ListExpr)target).Items;
        if (item is not ListValue { IsTuple: false } list) throw new TemplateError($"cannot unpack {item.Described}");
        CheckCount(names.Count, list.Items.Count);
        for (int i = 0; i < names.Count; i++) scope.Set(((NameExpr)names[i]).Name, list.Items[i]);
    }

    private static DictValue LoopInfo(List<TemplateValue> items, int i)
    {
        int n = items.Count;
        return new DictValue(new OrderedDictionary<string, TemplateValue>
        {
            ["index"] = NumberValue.Int(i + 1),
            ["index0"] = NumberValue.Int(i),
            ["revindex"] = NumberValue.Int(n - i),
            ["revindex0"] = NumberValue.Int(n - i - 1),
            ["first"] = BoolValue.Of(i == 0),
            ["last"] = BoolValue.Of(i == n - 1),
            ["length"] = NumberValue.Int(n),
            ["previtem"] = i > 0 ? items[i - 1] : UndefinedValue.Instance,
            ["nextitem"] = i < n - 1 ? items[i + 1] : UndefinedValue.Instance,
        });
    }

    // ---- macros and call blocks

    /// <summary>A macro sees the scope it is called from (as in the reference); a call block's caller sees its own.</summary>
    private FunctionValue MakeMacro(MacroNode macro, Scope? lexicalScope) =>
        new(macro.Name, (args, callScope) => CallMacro(macro, args, lexicalScope ?? callScope));

    private TemplateValue CallMacro(MacroNode macro, List<TemplateValue> args, Scope parent)
    {
        if (callDepth >= MaxCallDepth) throw new TemplateError($"macro calls nest more than {MaxCallDepth} deep");
        callDepth++;
        try
        {
            var scope = new Scope(parent);
            BindArguments(macro, args, scope);
            return new StringValue(RenderIsolated(macro.Body, scope));
        }
        finally
        {
            callDepth--;
        }
    }

    private void BindArguments(MacroNode macro, List<TemplateValue> args, Scope scope)
    {
        var positional = new List<TemplateValue>(args);
        var kwargs = new OrderedDictionary<string, TemplateValue>();
        if (positional.Count > 0 && positional[^1] is DictValue { Kind: DictKind.Kwargs } passed)
        {
            foreach (var (key, value) in passed.Map) kwargs[key] = value;
            positional.RemoveAt(positional.Count - 1);
        }
        var pending = new List<Parameter>();
        for (int i = 0; i < macro.Parameters.Count; i++)
        {
            var p = macro.Parameters[i];
            TemplateValue? value = i < positional.Count ? positional[i] : null;
            if (value is null && kwargs.Remove(p.Name, out var byName)) value = byName;
            if (value is null && p.Default is not null) pending.Add(p);
            scope.Set(p.Name, value ?? UndefinedValue.Instance);
        }
        if (macro.UsesKwargs) scope.Set("kwargs", new DictValue(kwargs));
        else if (kwargs.Count > 0) throw new TemplateError($"macro '{macro.Name}' takes no keyword argument '{kwargs.GetAt(0).Key}'");
        if (macro.UsesVarargs) scope.Set("varargs", new ListValue(positional.Skip(macro.Parameters.Count).ToList()));
        else if (positional.Count > macro.Parameters.Count) throw new TemplateError($"macro '{macro.Name}' takes at most {macro.Parameters.Count} argument(s)");
        foreach (var p in pending) scope.Set(p.Name, Eval(p.Default!, scope));
    }

    private TemplateValue ExecCallBlock(CallBlockNode block, Scope scope)
    {
        var caller = MakeMacro(block.Caller, scope);
        var (args, kwargs) = EvalArgs(block.Call.Args, scope);
        args.Add(new DictValue(kwargs, DictKind.Kwargs));
        var callee = Eval(block.Call.Callee, scope);
        if (callee is not FunctionValue fn) throw new TemplateError($"cannot call {callee.Described}");
        var callScope = new Scope(scope);
        callScope.Set("caller", caller);
        return fn.Invoke(args, callScope);
    }

    // ---- expressions

    /// <summary>
    /// Evaluates an expression; nesting is bounded so that no template can exhaust the stack. (An error ends the
    /// render, so the depth count need not be restored on the way out.)
    /// </summary>
    public TemplateValue Eval(Expr expr, Scope scope)
    {
        if (++evalDepth > MaxEvalDepth || !RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw new TemplateError("expressions or macro calls nest too deeply", expr.Line);
        try
        {
            var value = EvalCore(expr, scope);
            evalDepth--;
            return value;
        }
        catch (TemplateError e) when (e.SetLineIfUnknown(expr.Line))
        {
            throw;
        }
    }

    private TemplateValue EvalCore(Expr expr, Scope scope) => expr switch
    {
        LiteralExpr l => l.Value,
        NameExpr n => scope.Lookup(n.Name),
        ListExpr l => new ListValue(l.Items.Select(i => Eval(i, scope)).ToList(), l.IsTuple),
        DictExpr d => EvalDict(d, scope),
        MemberExpr m => TemplateBuiltins.Member(Eval(m.Object, scope), Eval(m.Key, scope)),
        SliceExpr s => EvalSlice(s, scope),
        CallExpr c => EvalCall(c, scope),
        UnaryExpr { Operator: "not" } u => BoolValue.Of(!Js.Truthy(Eval(u.Operand, scope))),
        UnaryExpr u => TemplateOperators.Sign(u.Operator, Eval(u.Operand, scope)),
        BinaryExpr b => EvalBinary(b, scope),
        FilterExpr f => TemplateFilters.Apply(this, Eval(f.Operand, scope), f, scope),
        TestExpr t => EvalTest(t, scope),
        TernaryExpr t => EvalConditional(t, scope),
        _ => throw new TemplateError($"unsupported expression {expr.GetType().Name}"),
    };

    private DictValue EvalDict(DictExpr dict, Scope scope)
    {
        var map = new OrderedDictionary<string, TemplateValue>();
        foreach (var (keyExpr, valueExpr) in dict.Items)
        {
            var key = Eval(keyExpr, scope);
            if (key is not StringValue k) throw new TemplateError($"dict keys must be strings, not {key.Described}", keyExpr.Line);
            map[k.Value] = Eval(valueExpr, scope);
        }
        return new DictValue(map);
    }

    private TemplateValue EvalBinary(BinaryExpr b, Scope scope)
    {
        var left = Eval(b.Left, scope);
        return b.Operator switch
        {
            "and" => Js.Truthy(left) ? Eval(b.Right, scope) : left,
            "or" => Js.Truthy(left) ? left : Eval(b.Right, scope),
            _ => TemplateOperators.Binary(b.Operator, left, Eval(b.Right, scope)),
        };
    }

    private TemplateValue EvalConditional(TernaryExpr t, Scope scope)
    {
        if (Js.Truthy(Eval(t.Condition, scope))) return Eval(t.Then, scope);
        return t.Else is null ? UndefinedValue.Instance : Eval(t.Else, scope);
    }

    private BoolValue EvalTest(TestExpr t, Scope scope)
    {
        var operand = Eval(t.Operand, scope);
        var argument = t.Argument is null ? null : Eval(t.Argument, scope);
        return BoolValue.Of(TemplateTests.Run(t.Name, operand, argument) != t.Negate);
    }

    private TemplateValue EvalSlice(SliceExpr s, Scope scope)
    {
        var target = Eval(s.Object, scope);
        if (target is not (ListValue or StringValue)) throw new TemplateError($"cannot slice {target.Described}");
        double? start = SliceBound(s.Start, scope), stop = SliceBound(s.Stop, scope), step = SliceBound(s.Step, scope);
        if (target is ListValue list) return new ListValue(TemplateOperators.Slice(list.Items, start, stop, step));
        return new StringValue(string.Concat(TemplateOperators.Slice(Js.CodePoints(((StringValue)target).Value), start, stop, step)));
    }

    private double? SliceBound(Expr? e, Scope scope) => (e is null ? UndefinedValue.Instance : Eval(e, scope)) switch
    {
        UndefinedValue => null,
        NumberValue { IsInt: true } n => n.Value,
        var v => throw new TemplateError($"slice bounds must be integers, not {v.Described}"),
    };

    private TemplateValue EvalCall(CallExpr call, Scope scope)
    {
        var (args, kwargs) = EvalArgs(call.Args, scope);
        if (kwargs.Count > 0) args.Add(new DictValue(kwargs, DictKind.Kwargs));
        if (call.Callee is MemberExpr { Dotted: true, Key: LiteralExpr { Value: StringValue method } } m)
        {
            var target = Eval(m.Object, scope);
            if (TemplateBuiltins.Member(target, method) is FunctionValue bound) return bound.Invoke(args, scope);
            throw new TemplateError($"unsupported method '{method.Value}' of {target.Described}");
        }
        var callee = Eval(call.Callee, scope);
        if (callee is FunctionValue fn) return fn.Invoke(args, scope);
        string name = call.Callee is NameExpr n ? $" '{n.Name}'" : "";
        throw new TemplateError(callee is UndefinedValue ? $"unknown function{name}" : $"cannot call {callee.Described}{name}");
    }

    /// <summary>Evaluates call arguments: positional ones (and *spreads) first, then keyword ones (and **spreads).</summary>
    public (List<TemplateValue> Positional, OrderedDictionary<string, TemplateValue> Keywords) EvalArgs(List<Arg> args, Scope scope)
    {
        var positional = new List<TemplateValue>();
        foreach (var arg in args)
        {
            if (arg.Kind == ArgKind.Positional) positional.Add(Eval(arg.Value, scope));
            else if (arg.Kind == ArgKind.Spread) positional.AddRange(Eval(arg.Value, scope) is ListValue l ? l.Items : throw new TemplateError("'*' needs a list"));
        }
        var keywords = new OrderedDictionary<string, TemplateValue>();
        foreach (var arg in args)
        {
            if (arg.Kind == ArgKind.Keyword) AddKeyword(keywords, arg.Name!, Eval(arg.Value, scope));
            if (arg.Kind != ArgKind.KeywordSpread) continue;
            if (Eval(arg.Value, scope) is not DictValue { IsObject: true } d) throw new TemplateError("'**' needs a dict");
            foreach (var (key, value) in d.Map) AddKeyword(keywords, key, value);
        }
        return (positional, keywords);
    }

    private static void AddKeyword(OrderedDictionary<string, TemplateValue> keywords, string name, TemplateValue value)
    {
        if (!keywords.TryAdd(name, value)) throw new TemplateError($"got multiple values for keyword argument '{name}'");
    }
}
